//! A read-only, safe view of alsa-lib configuration nodes.

use std::ffi::{CStr, CString};
use std::marker::PhantomData;

use alsa_sys as a;

use crate::error::{Error, Result};

/// A configuration node borrowed from alsa-lib for the duration of an open.
#[derive(Clone, Copy)]
pub struct Conf<'a> {
    ptr: *mut a::snd_config_t,
    _life: PhantomData<&'a a::snd_config_t>,
}

/// The value of a leaf node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Str(String),
    Compound,
    Other,
}

impl<'a> Conf<'a> {
    /// # Safety
    /// `ptr` must be a valid node that outlives `'a` (alsa-lib keeps the tree alive during open).
    pub unsafe fn from_raw(ptr: *mut a::snd_config_t) -> Option<Conf<'a>> {
        (!ptr.is_null()).then_some(Conf {
            ptr,
            _life: PhantomData,
        })
    }

    pub fn id(&self) -> String {
        let mut id: *const libc::c_char = std::ptr::null();
        // SAFETY: self.ptr is a live node; alsa-lib returns a pointer to the node's own id string.
        if unsafe { a::snd_config_get_id(self.ptr, &mut id) } < 0 || id.is_null() {
            return String::new();
        }
        // SAFETY: non-NULL ids are NUL-terminated and live as long as the node.
        unsafe { CStr::from_ptr(id) }.to_string_lossy().into_owned()
    }

    pub fn value(&self) -> Value {
        // SAFETY: all getters below only read the live node and write into our locals.
        unsafe {
            match a::snd_config_get_type(self.ptr) {
                a::SND_CONFIG_TYPE_INTEGER => {
                    let mut v: libc::c_long = 0;
                    a::snd_config_get_integer(self.ptr, &mut v);
                    Value::Integer(v as i64)
                }
                a::SND_CONFIG_TYPE_INTEGER64 => {
                    let mut v: libc::c_longlong = 0;
                    a::snd_config_get_integer64(self.ptr, &mut v);
                    Value::Integer(v)
                }
                a::SND_CONFIG_TYPE_REAL => {
                    let mut v = 0f64;
                    a::snd_config_get_real(self.ptr, &mut v);
                    Value::Real(v)
                }
                a::SND_CONFIG_TYPE_STRING => {
                    let mut s: *const libc::c_char = std::ptr::null();
                    a::snd_config_get_string(self.ptr, &mut s);
                    if s.is_null() {
                        Value::Str(String::new())
                    } else {
                        Value::Str(CStr::from_ptr(s).to_string_lossy().into_owned())
                    }
                }
                a::SND_CONFIG_TYPE_COMPOUND => Value::Compound,
                _ => Value::Other,
            }
        }
    }

    /// alsa-lib's own boolean parsing (`true`, `yes`, `on`, `1`, ...); `None` if not a boolean.
    pub fn boolean(&self) -> Option<bool> {
        // SAFETY: reads the live node.
        match unsafe { a::snd_config_get_bool(self.ptr) } {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// The node as an integer: an integer node, or a string alsa-lib would read as one.
    /// An error names `key` and what the node holds instead.
    pub fn integer(&self, key: &str) -> Result<i64> {
        let v = self.value();
        match &v {
            Value::Integer(i) => Ok(*i),
            Value::Str(s) => parse_int(s).ok_or_else(|| expected(key, "an integer", &v)),
            _ => Err(expected(key, "an integer", &v)),
        }
    }

    /// The node as a non-empty string.
    pub fn string(&self, key: &str) -> Result<String> {
        match self.value() {
            Value::Str(s) if !s.is_empty() => Ok(s),
            Value::Str(_) => Err(Error::config(key, "must not be empty")),
            v => Err(expected(key, "a string", &v)),
        }
    }

    /// The node as a boolean, as alsa-lib reads one.
    pub fn flag(&self, key: &str) -> Result<bool> {
        self.boolean().ok_or_else(|| expected(key, "a boolean", &self.value()))
    }

    /// The children of a compound node, in order; empty for a leaf.
    pub fn children(&self) -> Vec<Conf<'a>> {
        let mut out = Vec::new();
        if self.value() != Value::Compound {
            return out;
        }
        // SAFETY: standard iteration over a live compound node; entries live as long as it.
        unsafe {
            let mut i = a::snd_config_iterator_first(self.ptr);
            let end = a::snd_config_iterator_end(self.ptr);
            while i != end {
                if let Some(c) = Conf::from_raw(a::snd_config_iterator_entry(i)) {
                    out.push(c);
                }
                i = a::snd_config_iterator_next(i);
            }
        }
        out
    }

    /// Resolves `base.name` in `self` (a root) as alsa-lib does for `pcm_slave` references.
    pub fn definition(&self, base: &str, name: &str) -> Option<OwnedConf> {
        let b = CString::new(base).ok()?;
        let n = CString::new(name).ok()?;
        let mut out: *mut a::snd_config_t = std::ptr::null_mut();
        // SAFETY: self.ptr is a live root; on success alsa-lib hands us a node we must delete.
        let r = unsafe { a::snd_config_search_definition(self.ptr, b.as_ptr(), n.as_ptr(), &mut out) };
        // Built lazily: an OwnedConf over NULL would be deleted on drop.
        (r >= 0 && !out.is_null()).then(|| OwnedConf { ptr: out })
    }
}

/// What a node holds, for an error that says what was expected instead.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Integer(i) => format!("the integer {i}"),
        Value::Real(r) => format!("the real {r}"),
        Value::Str(s) => format!("the string \"{s}\""),
        Value::Compound => "a compound".into(),
        Value::Other => "an unsupported value".into(),
    }
}

/// `key` held `v` where `what` was expected.
pub fn expected(key: &str, what: &str, v: &Value) -> Error {
    Error::config(key, format!("expected {what}, got {}", describe(v)))
}

/// Decimal, `0x` hex or leading-zero octal, as alsa-lib reads numbers.
pub fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(&body[1..], 8).ok()?
    } else {
        body.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// A node alsa-lib allocated for us; deleted on drop.
pub struct OwnedConf {
    ptr: *mut a::snd_config_t,
}

impl OwnedConf {
    pub fn get(&self) -> Conf<'_> {
        Conf {
            ptr: self.ptr,
            _life: PhantomData,
        }
    }
}

impl Drop for OwnedConf {
    fn drop(&mut self) {
        // SAFETY: we own this node (it came from snd_config_search_definition).
        unsafe { a::snd_config_delete(self.ptr) };
    }
}
