//! `livemig-subreaper PROGRAM ARGS...`: run PROGRAM as a child subreaper that reaps every
//! orphan at once. libvirtd daemonizes QEMU and polls `kill(pid, 0)` until it is gone; PID 1
//! on these machines reaps orphans only every ~1.2 s, which made every QEMU stop cost ~1.6 s
//! (libvirt-real-peer.md §9.1). Exits with PROGRAM's status.

use std::process::{Command, ExitCode};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: livemig-subreaper PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("livemig-subreaper: PR_SET_CHILD_SUBREAPER: {e}");
        return ExitCode::from(2);
    }
    let child = match Command::new(program).args(rest).spawn() {
        Ok(c) => nix::unistd::Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("livemig-subreaper: {program}: {e}");
            return ExitCode::from(127);
        }
    };
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
            }
            Ok(WaitStatus::Signaled(pid, ..)) if pid == child => return ExitCode::from(1),
            Err(Errno::ECHILD) => return ExitCode::SUCCESS,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("livemig-subreaper: waitpid: {e}");
                return ExitCode::from(1);
            }
        }
    }
}
