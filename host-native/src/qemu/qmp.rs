//! A small blocking QMP client over a unix socket.
//!
//! QMP is line-delimited JSON: the server greets with `{"QMP": {...}}`, the client must send
//! `qmp_capabilities` before anything else, then every command `{"execute", "arguments", "id"}`
//! gets exactly one reply (`{"return", "id"}` or `{"error": {"class", "desc"}, "id"}`), and
//! asynchronous events (`{"event", "data", "timestamp": {"seconds", "microseconds"}}`) may be
//! interleaved anywhere.
//!
//! [`Qmp`] reads only when asked to (no background thread): while it waits for a reply or an
//! event, every event it reads is queued in arrival order, so nothing is lost between calls.
//! Events carry QEMU's own timestamp ([`Event::timestamp_us`], host wall clock), which is the
//! only reliable way to order things that happened on different sockets.
//!
//! A read that times out keeps any partial line it had read, so the connection stays usable
//! after a [`QmpError::Timeout`]; a late reply to a timed-out command is recognised by its `id`
//! and dropped.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

/// How long [`Qmp::execute`] waits for a reply unless changed with
/// [`Qmp::set_command_timeout`].
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the QMP client.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket failed, or QEMU closed it (`UnexpectedEof`).
    #[error("QMP I/O error: {0}")]
    Io(#[from] io::Error),
    /// Nothing suitable arrived in time; `what` says what was awaited.
    #[error("QMP timeout waiting for {what}")]
    Timeout { what: String },
    /// QEMU answered a command with an error.
    #[error("QMP error {class}: {desc}")]
    Qmp { class: String, desc: String },
    /// QEMU sent something that is not valid QMP.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
}

/// One asynchronous QMP event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name, e.g. `MIGRATION` or `SPICE_MIGRATE_COMPLETED`.
    pub name: String,
    /// The event's `data` member, `Value::Null` when QEMU sent none (e.g. `STOP`, `RESUME`).
    pub data: Value,
    /// QEMU's timestamp of the event in microseconds since the Unix epoch (host wall clock,
    /// `seconds * 1_000_000 + microseconds`; 0 if QEMU could not read the clock).
    pub timestamp_us: u64,
}

/// A connected QMP session (capabilities already negotiated).
#[derive(Debug)]
pub struct Qmp {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    /// Bytes of a line not yet complete (kept across timeouts).
    partial: Vec<u8>,
    events: VecDeque<Event>,
    next_id: u64,
    command_timeout: Duration,
    greeting: Value,
}

impl Qmp {
    /// Connects to the QMP socket at `path`, retrying every 10 ms while the socket does not
    /// exist yet or refuses connections (QEMU still starting), for at most `timeout` in total
    /// (connection plus greeting plus `qmp_capabilities`).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let deadline = Instant::now() + timeout;
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    return Qmp::from_stream(stream, left.max(Duration::from_millis(100)));
                }
                Err(e)
                    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) =>
                {
                    if Instant::now() >= deadline {
                        return Err(QmpError::Timeout {
                            what: format!("QMP socket {} to accept a connection", path.display()),
                        });
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(QmpError::Io(e)),
            }
        }
    }

    /// Runs the QMP handshake (greeting, then `qmp_capabilities`) on an already connected
    /// stream, waiting at most `timeout` for each of the two.
    pub fn from_stream(stream: UnixStream, timeout: Duration) -> Result<Qmp, QmpError> {
        let reader = BufReader::new(stream.try_clone()?);
        let mut qmp = Qmp {
            writer: stream,
            reader,
            partial: Vec::new(),
            events: VecDeque::new(),
            next_id: 1,
            command_timeout: timeout,
            greeting: Value::Null,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let msg = qmp.read_message(deadline, "the QMP greeting")?;
            if msg.get("QMP").is_some() {
                qmp.greeting = msg;
                break;
            }
            if !qmp.queue_if_event(&msg)? {
                return Err(QmpError::Protocol(format!(
                    "expected the QMP greeting, got {msg}"
                )));
            }
        }
        qmp.execute("qmp_capabilities", Value::Null)?;
        qmp.command_timeout = DEFAULT_COMMAND_TIMEOUT;
        Ok(qmp)
    }

    /// The greeting QEMU sent (`{"QMP": {"version": ..., "capabilities": [...]}}`).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Sets how long [`execute`](Self::execute) waits for a reply.
    pub fn set_command_timeout(&mut self, timeout: Duration) {
        self.command_timeout = timeout;
    }

    /// The current reply timeout of [`execute`](Self::execute).
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Runs one command and returns its `return` value. `args` is sent as `arguments`; pass
    /// `Value::Null` (or an empty object) for none. Events read meanwhile are queued.
    pub fn execute(&mut self, cmd: &str, args: Value) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(cmd.into()));
        match args {
            Value::Null => {}
            Value::Object(ref o) if o.is_empty() => {}
            Value::Object(_) => {
                msg.insert("arguments".into(), args);
            }
            other => {
                return Err(QmpError::Protocol(format!(
                    "arguments of {cmd} must be a JSON object, not {other}"
                )))
            }
        }
        msg.insert("id".into(), json!(id));
        let mut line = Value::Object(msg).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        self.writer.flush()?;

        let deadline = Instant::now() + self.command_timeout;
        let what = format!("the reply to {cmd}");
        loop {
            let msg = self.read_message(deadline, &what)?;
            if self.queue_if_event(&msg)? {
                continue;
            }
            match msg.get("id") {
                Some(got) if got.as_u64() == Some(id) => return reply_result(msg),
                // A late reply to an earlier command that timed out.
                Some(_) => continue,
                None => {
                    // QEMU omits the id only when it could not parse the request.
                    reply_result(msg.clone())?;
                    return Err(QmpError::Protocol(format!("reply without id: {msg}")));
                }
            }
        }
    }

    /// Returns the first event named `name`: an already queued one if there is one (it is
    /// removed from the queue, the others stay), else the next one to arrive within `timeout`.
    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> Result<Event, QmpError> {
        self.wait_event_matching(name, timeout, |_| true)
    }

    /// Like [`wait_event`](Self::wait_event), for the first event named `name` for which
    /// `accept` returns true (e.g. a `MIGRATION` event with a given `status`).
    pub fn wait_event_matching(
        &mut self,
        name: &str,
        timeout: Duration,
        mut accept: impl FnMut(&Event) -> bool,
    ) -> Result<Event, QmpError> {
        if let Some(i) = self.events.iter().position(|e| e.name == name && accept(e)) {
            return Ok(self.events.remove(i).expect("index found above"));
        }
        let deadline = Instant::now() + timeout;
        let what = format!("event {name}");
        loop {
            let msg = self.read_message(deadline, &what)?;
            if let Some(event) = parse_event(&msg)? {
                if event.name == name && accept(&event) {
                    return Ok(event);
                }
                self.events.push_back(event);
            }
            // Anything else is a late reply to a command that timed out: dropped.
        }
    }

    /// Reads whatever QEMU has already sent (without blocking), then returns and clears all
    /// queued events, oldest first.
    pub fn drain_events(&mut self) -> Result<Vec<Event>, QmpError> {
        self.poll_events()?;
        Ok(self.events.drain(..).collect())
    }

    /// Reads whatever QEMU has already sent, without blocking, queueing the events.
    pub fn poll_events(&mut self) -> Result<(), QmpError> {
        self.reader.get_ref().set_nonblocking(true)?;
        let result = loop {
            match self.read_line() {
                Ok(Some(msg)) => {
                    if let Err(e) = self.queue_if_event(&msg) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.reader.get_ref().set_nonblocking(false)?;
        result
    }

    /// The events queued so far, oldest first (not removed).
    pub fn queued_events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// Pushes `msg` to the event queue if it is an event; says whether it was.
    fn queue_if_event(&mut self, msg: &Value) -> Result<bool, QmpError> {
        match parse_event(msg)? {
            Some(e) => {
                self.events.push_back(e);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads one message, waiting until `deadline`.
    fn read_message(&mut self, deadline: Instant, what: &str) -> Result<Value, QmpError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QmpError::Timeout { what: what.into() });
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            if let Some(msg) = self.read_line()? {
                return Ok(msg);
            }
        }
    }

    /// Reads one line; `None` when none is complete yet (read timeout / would block).
    fn read_line(&mut self) -> Result<Option<Value>, QmpError> {
        loop {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) => {
                    return Err(QmpError::Io(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "QEMU closed the QMP connection",
                    )))
                }
                Ok(_) if self.partial.ends_with(b"\n") => {
                    let line = std::mem::take(&mut self.partial);
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    return serde_json::from_str(text)
                        .map(Some)
                        .map_err(|e| QmpError::Protocol(format!("bad JSON {text:?}: {e}")));
                }
                // End of stream in the middle of a line: the next read reports the EOF.
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(QmpError::Io(e)),
            }
        }
    }
}

/// Turns a reply into the `return` value or a [`QmpError::Qmp`].
fn reply_result(msg: Value) -> Result<Value, QmpError> {
    if let Some(err) = msg.get("error") {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(QmpError::Qmp {
            class: s("class"),
            desc: s("desc"),
        });
    }
    match msg {
        Value::Object(mut o) => o
            .remove("return")
            .ok_or_else(|| QmpError::Protocol(format!("reply without return: {o:?}"))),
        other => Err(QmpError::Protocol(format!(
            "reply is not an object: {other}"
        ))),
    }
}

fn parse_event(msg: &Value) -> Result<Option<Event>, QmpError> {
    let Some(name) = msg.get("event") else {
        return Ok(None);
    };
    let name = name
        .as_str()
        .ok_or_else(|| QmpError::Protocol(format!("event name is not a string: {msg}")))?;
    let ts = msg.get("timestamp");
    let part = |k: &str| {
        ts.and_then(|t| t.get(k))
            .and_then(Value::as_i64)
            .map_or(0, |v| u64::try_from(v).unwrap_or(0))
    };
    Ok(Some(Event {
        name: name.to_string(),
        data: msg.get("data").cloned().unwrap_or(Value::Null),
        timestamp_us: part("seconds")
            .saturating_mul(1_000_000)
            .saturating_add(part("microseconds")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    /// A fake QEMU on a socketpair: greeting, capabilities, then the scripted exchange.
    fn fake(
        script: impl FnOnce(&mut BufReader<UnixStream>, &mut UnixStream) + Send + 'static,
    ) -> Qmp {
        let dir = std::env::temp_dir().join(format!(
            "livemig-qmp-unit-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            s.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.contains("qmp_capabilities"), "{line}");
            s.write_all(b"{\"return\": {}, \"id\": 1}\r\n").unwrap();
            script(&mut r, &mut s);
        });
        let qmp = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        qmp
    }

    #[test]
    fn replies_match_ids_and_events_are_queued_in_order() {
        let mut qmp = fake(|r, s| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["execute"], "query-status");
            assert_eq!(v["id"], 2);
            assert!(v.get("arguments").is_none());
            // A stale reply, two events split across writes, then the reply.
            s.write_all(b"{\"return\": 1, \"id\": 99}\r\n{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 2, \"microseconds\": 5}}\r\n{\"event\": \"MIG")
                .unwrap();
            s.write_all(b"RATION\", \"data\": {\"status\": \"completed\"}, \"timestamp\": {\"seconds\": 3, \"microseconds\": 0}}\r\n{\"return\": {\"status\": \"running\"}, \"id\": 2}\r\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            s.write_all(
                b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}, \"id\": 3}\r\n",
            )
            .unwrap();
            thread::sleep(Duration::from_millis(300));
            s.write_all(b"{\"event\": \"RESUME\", \"timestamp\": {\"seconds\": 4, \"microseconds\": 1}}\r\n").unwrap();
            thread::sleep(Duration::from_millis(500));
        });
        let r = qmp.execute("query-status", json!({})).unwrap();
        assert_eq!(r["status"], "running");
        match qmp.execute("bogus", json!({"a": 1})) {
            Err(QmpError::Qmp { class, desc }) => {
                assert_eq!((class.as_str(), desc.as_str()), ("GenericError", "nope"))
            }
            other => panic!("{other:?}"),
        }
        let m = qmp
            .wait_event("MIGRATION", Duration::from_millis(10))
            .unwrap();
        assert_eq!(m.data["status"], "completed");
        assert_eq!(m.timestamp_us, 3_000_000);
        assert!(matches!(
            qmp.wait_event("RESUME", Duration::from_millis(50)),
            Err(QmpError::Timeout { .. })
        ));
        let e = qmp.wait_event("RESUME", Duration::from_secs(2)).unwrap();
        assert_eq!(e.timestamp_us, 4_000_001);
        let rest = qmp.drain_events().unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].name, "STOP");
        assert_eq!(rest[0].data, Value::Null);
        assert_eq!(rest[0].timestamp_us, 2_000_005);
        // The fake closes the socket after its script: EOF is an Io error.
        match qmp.wait_event("NEVER", Duration::from_secs(5)) {
            Err(QmpError::Io(e)) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connect_times_out_on_a_missing_socket() {
        let t = Instant::now();
        let r = Qmp::connect(
            Path::new("/nonexistent/livemig/qmp.sock"),
            Duration::from_millis(100),
        );
        assert!(matches!(r, Err(QmpError::Timeout { .. })), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
