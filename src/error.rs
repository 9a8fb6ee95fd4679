//! rdmix's one error type: an errno for alsa-lib and one line for the user.
//!
//! Every failure, in either process, is an [`Error`]. The line names rdmix, the option or
//! object, and the cause (`rdmix: slave.pcm "hw:0": cannot open: No such device`). An error
//! that comes up from a thin wrapper (an alsa-lib or Linux call) may carry only its errno;
//! the layer that knows what was being done gives it its line with [`Error::context`].
//!
//! Errors cross the process boundary in one encoding ([`Error::encode`]): the pump's start-up
//! report and every refusal on the control socket use it.

use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Positive errno.
    errno: i32,
    /// The user-facing line; empty for a bare errno not yet put in context.
    line: Cow<'static, str>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with its line. `errno` may be given with either sign.
    pub fn new(errno: i32, line: impl Into<Cow<'static, str>>) -> Error {
        Error {
            errno: errno.checked_abs().unwrap_or(libc::EIO).max(1),
            line: line.into(),
        }
    }

    /// A bare errno from a wrapper; cheap, so it can stand in a hot path (`-EAGAIN`).
    pub fn errno(errno: i32) -> Error {
        Error::new(errno, "")
    }

    /// A configuration problem: `rdmix: KEY: MSG`, EINVAL.
    pub fn config(key: &str, msg: impl fmt::Display) -> Error {
        Error::new(libc::EINVAL, format!("rdmix: {key}: {msg}"))
    }

    /// A system call that failed, in the words of `what` (`"rdmix: timerfd"`).
    pub fn io(what: &str, e: std::io::Error) -> Error {
        Error::new(e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
    }

    /// The same errno with the line the caller can give it.
    pub fn context(self, line: impl Into<Cow<'static, str>>) -> Error {
        Error {
            errno: self.errno,
            line: line.into(),
        }
    }

    /// The negative errno alsa-lib expects.
    pub fn neg(&self) -> i32 {
        -self.errno
    }

    pub fn is(&self, errno: i32) -> bool {
        self.errno == errno.abs()
    }

    /// The user-facing line (empty for a bare errno).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// `errno` as 4 little-endian bytes, then the line in UTF-8.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.errno.to_le_bytes().to_vec();
        out.extend_from_slice(self.line.as_bytes());
        out
    }

    /// The inverse of `encode`; `None` for anything that is not an encoded error.
    pub fn decode(b: &[u8]) -> Option<Error> {
        let errno = i32::from_le_bytes(b.get(..4)?.try_into().ok()?);
        if errno <= 0 {
            return None;
        }
        Some(Error::new(errno, String::from_utf8_lossy(&b[4..]).into_owned()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line.is_empty() {
            write!(f, "rdmix: {}", std::io::Error::from_raw_os_error(self.errno))
        } else {
            f.write_str(&self.line)
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_errno_and_line_across_the_wire() {
        let e = Error::new(-libc::EACCES, "rdmix: ipc_key 0x1: permission denied");
        assert_eq!(e.neg(), -libc::EACCES);
        assert!(e.is(libc::EACCES) && e.is(-libc::EACCES));
        assert_eq!(Error::decode(&e.encode()), Some(e));
        assert_eq!(Error::decode(&[0, 0, 0, 0]), None, "errno 0 is success, not an error");
        assert_eq!(Error::decode(&[1, 0]), None);
        let bare = Error::errno(libc::EPIPE);
        assert_eq!(bare.to_string(), "rdmix: Broken pipe (os error 32)");
        assert_eq!(
            bare.context("rdmix: drain: the pump is gone").to_string(),
            "rdmix: drain: the pump is gone"
        );
        assert_eq!(
            Error::config("slave.rate", "out of range").line(),
            "rdmix: slave.rate: out of range"
        );
    }
}
