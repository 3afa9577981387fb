// Errors of the package: JS Errors named LivemigError with a stable `code` (ErrorCode). The
// wasm raises most of them itself; these helpers raise the ones caught before the call.

/** A LivemigError with `code`. */
export function fail(code, message) {
  const e = new Error(message);
  e.name = 'LivemigError';
  e.code = code;
  return e;
}

/** Whether `e` is an error this package threw on purpose (anything else is a bug). */
export function isLivemigError(e) {
  return e instanceof Error && e.name === 'LivemigError' && typeof e.code === 'string';
}

/** `now` must be a number; the wasm checks its range (0..=2^53-1, fractions truncated). */
export function checkNow(now) {
  if (typeof now !== 'number') {
    throw fail('invalid_time', `now must be a number of milliseconds, got a ${typeof now}`);
  }
}
