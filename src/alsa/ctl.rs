//! alsa-lib's external-control ("ctl_ext") interface as a safe trait.
//!
//! A control plugin implements [`Control`]; [`open`] creates the ctl_ext handle around it,
//! and C trampolines turn each callback into a method call behind a mutex. As in `ioplug`,
//! no panic crosses back into C: each trampoline turns one into `-EIO` and one line.
//!
//! ctl_ext makes an element's numid its position in the list plus one, and resolves a
//! numid by asking for the element at that position again. So a key here is a position,
//! and a plugin must keep positions where they are for as long as anyone may hold one
//! (see `Control::count`).

// `long` is 32 bits on 32-bit targets: the casts to i64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_ulong, c_ushort, c_void};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use alsa_sys as a;
use parking_lot::Mutex;

use super::conf::Conf;
use super::ffi::*;
use super::ioplug::snderr_from;

/// One line from the control plugin, as `SNDERR` prints it.
pub fn snderr(func: &CStr, msg: &str) {
    snderr_from(c"ctl_rdmix", func, msg);
}
use crate::error::{Error, Result};

/// An element's position in the list, which is also its numid less one.
pub type Key = usize;

/// What names a mixer element (its interface is always the mixer's).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElemId {
    pub name: String,
    pub index: u32,
}

/// An element's type, with one value each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Switch,
    /// An integer from 0 to `max`, on the plugin's dB scale ([`Control::DB_SCALE`]).
    Level {
        max: i64,
    },
}

/// What an element event says (`SND_CTL_EVENT_MASK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Value,
}

/// The card a control handle says it is.
pub struct Card {
    pub id: String,
    pub name: String,
    pub longname: String,
}

/// What a control plugin does, in safe Rust.
pub trait Control: Send + 'static {
    /// The scale of every `Kind::Level` element, as `TLV_DB_SCALE` gives it: the dB of
    /// step 0 and of each step, in hundredths, and whether step 0 is silence.
    const DB_SCALE: (i32, i32, bool);
    /// How many positions there are. Called when a program lists the elements afresh
    /// (`snd_ctl_elem_list`), which is when positions may be closed up.
    fn count(&mut self) -> usize;
    fn id(&self, key: Key) -> Option<ElemId>;
    fn find(&self, id: &ElemId) -> Option<Key>;
    fn kind(&self, key: Key) -> Option<Kind>;
    fn read(&mut self, key: Key) -> Result<i64>;
    /// Whether the value changed.
    fn write(&mut self, key: Key, value: i64) -> Result<bool>;
    fn subscribe(&mut self, on: bool);
    /// The next pending event, with the element's position.
    fn next_event(&mut self) -> Option<(ElemId, Key, Change)>;
    /// The one descriptor the application polls; it stays the same for the handle's life.
    fn poll_fd(&self) -> RawFd;
    /// After the descriptor stirred: whether events are pending now.
    fn pending(&mut self) -> bool;
}

/// One open control. `ext` must stay first and at a fixed address: ctl_ext keeps a pointer
/// to it, and `ext.callback` points at `callbacks`, `ext.tlv` at `tlv`.
#[repr(C)]
struct Holder<C> {
    ext: snd_ctl_ext_t,
    callbacks: snd_ctl_ext_callback_t,
    tlv: [c_uint; 4],
    control: Mutex<C>,
}

/// # Safety
/// `ext` must be the `ext` field of a live `Holder<C>` (ctl_ext calls us only with ours).
unsafe fn holder<'a, C>(ext: *mut snd_ctl_ext_t) -> &'a Holder<C> {
    // SAFETY: private_data was set to the Holder that contains this ext.
    unsafe { &*((*ext).private_data as *const Holder<C>) }
}

fn guarded<R>(func: &CStr, fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        snderr(func, "rdmix: internal error (a bug in rdmix); the call failed");
        fail
    })
}

macro_rules! with_control {
    ($name:literal, $fail:expr, $ext:ident, |$c:ident| $body:expr) => {
        guarded($name, $fail, || {
            // SAFETY: ctl_ext calls us only with the ext we registered.
            let h = unsafe { holder::<C>($ext) };
            let mut guard = h.control.lock();
            let $c = &mut *guard;
            $body
        })
    };
}

fn report(func: &CStr, e: Error) -> c_int {
    snderr(func, &e.to_string());
    e.neg()
}

const NOT_FOUND: snd_ctl_ext_key_t = c_ulong::MAX;

/// # Safety
/// `id` must be a valid element id.
unsafe fn read_id(id: *const a::snd_ctl_elem_id_t) -> Option<ElemId> {
    // SAFETY: a valid id; alsa-lib returns a pointer to its own NUL-terminated name.
    unsafe {
        if a::snd_ctl_elem_id_get_interface(id) != a::SND_CTL_ELEM_IFACE_MIXER {
            return None;
        }
        let name = a::snd_ctl_elem_id_get_name(id);
        (!name.is_null()).then(|| ElemId {
            name: CStr::from_ptr(name).to_string_lossy().into_owned(),
            index: a::snd_ctl_elem_id_get_index(id),
        })
    }
}

/// # Safety
/// `id` must be a valid, writable element id.
unsafe fn write_id(id: *mut a::snd_ctl_elem_id_t, e: &ElemId, key: Key) {
    let name = CString::new(e.name.replace('\0', " ")).unwrap_or_default();
    // SAFETY: a valid id; alsa-lib copies the name (at most its 44 bytes).
    unsafe {
        a::snd_ctl_elem_id_clear(id);
        a::snd_ctl_elem_id_set_interface(id, a::SND_CTL_ELEM_IFACE_MIXER);
        a::snd_ctl_elem_id_set_name(id, name.as_ptr());
        a::snd_ctl_elem_id_set_index(id, e.index);
        a::snd_ctl_elem_id_set_numid(id, key as c_uint + 1);
    }
}

unsafe extern "C" fn cb_close<C: Control>(ext: *mut snd_ctl_ext_t) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the holder was made by Box::into_raw in `open`; ctl_ext calls close once.
        drop(unsafe { Box::from_raw((*ext).private_data as *mut Holder<C>) });
    }));
}

unsafe extern "C" fn cb_elem_count<C: Control>(ext: *mut snd_ctl_ext_t) -> c_int {
    with_control!(c"elem_count", -libc::EIO, ext, |c| c.count() as c_int)
}

unsafe extern "C" fn cb_elem_list<C: Control>(
    ext: *mut snd_ctl_ext_t,
    offset: c_uint,
    id: *mut a::snd_ctl_elem_id_t,
) -> c_int {
    with_control!(c"elem_list", -libc::EIO, ext, |c| match c.id(offset as Key) {
        Some(e) => {
            // SAFETY: ctl_ext passes a valid id to fill.
            unsafe { write_id(id, &e, offset as Key) };
            0
        }
        None => -libc::ENOENT,
    })
}

unsafe extern "C" fn cb_find_elem<C: Control>(
    ext: *mut snd_ctl_ext_t,
    id: *const a::snd_ctl_elem_id_t,
) -> snd_ctl_ext_key_t {
    with_control!(c"find_elem", NOT_FOUND, ext, |c| {
        // SAFETY: ctl_ext passes a valid id.
        unsafe { read_id(id) }
            .and_then(|e| c.find(&e))
            .map_or(NOT_FOUND, |k| k as snd_ctl_ext_key_t)
    })
}

unsafe extern "C" fn cb_get_attribute<C: Control>(
    ext: *mut snd_ctl_ext_t,
    key: snd_ctl_ext_key_t,
    kind: *mut c_int,
    acc: *mut c_uint,
    count: *mut c_uint,
) -> c_int {
    with_control!(c"get_attribute", -libc::EIO, ext, |c| {
        let Some(k) = c.kind(key as Key) else {
            return -libc::ENOENT;
        };
        let rw = snd_ctl_ext_access_SND_CTL_EXT_ACCESS_READWRITE;
        let (t, access) = match k {
            Kind::Switch => (a::SND_CTL_ELEM_TYPE_BOOLEAN, rw),
            Kind::Level { .. } => (
                a::SND_CTL_ELEM_TYPE_INTEGER,
                rw | snd_ctl_ext_access_SND_CTL_EXT_ACCESS_TLV_READ,
            ),
        };
        // SAFETY: ctl_ext passes three valid out-pointers.
        unsafe {
            *kind = t as c_int;
            *acc = access as c_uint;
            *count = 1;
        }
        0
    })
}

unsafe extern "C" fn cb_get_integer_info<C: Control>(
    ext: *mut snd_ctl_ext_t,
    key: snd_ctl_ext_key_t,
    min: *mut c_long,
    max: *mut c_long,
    step: *mut c_long,
) -> c_int {
    with_control!(c"get_integer_info", -libc::EIO, ext, |c| {
        let Some(Kind::Level { max: m }) = c.kind(key as Key) else {
            return -libc::EINVAL;
        };
        // SAFETY: ctl_ext passes three valid out-pointers.
        unsafe {
            *min = 0;
            *max = m as c_long;
            *step = 1;
        }
        0
    })
}

unsafe extern "C" fn cb_read_integer<C: Control>(
    ext: *mut snd_ctl_ext_t,
    key: snd_ctl_ext_key_t,
    value: *mut c_long,
) -> c_int {
    with_control!(c"read_integer", -libc::EIO, ext, |c| match c.read(key as Key) {
        Ok(v) => {
            // SAFETY: ctl_ext passes room for the element's one value.
            unsafe { *value = v as c_long };
            0
        }
        Err(e) => report(c"read_integer", e),
    })
}

unsafe extern "C" fn cb_write_integer<C: Control>(
    ext: *mut snd_ctl_ext_t,
    key: snd_ctl_ext_key_t,
    value: *mut c_long,
) -> c_int {
    with_control!(c"write_integer", -libc::EIO, ext, |c| {
        // SAFETY: ctl_ext passes the element's one value.
        let v = unsafe { *value } as i64;
        match c.write(key as Key, v) {
            Ok(changed) => changed as c_int,
            Err(e) => report(c"write_integer", e),
        }
    })
}

unsafe extern "C" fn cb_subscribe_events<C: Control>(ext: *mut snd_ctl_ext_t, subscribe: c_int) {
    with_control!(c"subscribe_events", (), ext, |c| c.subscribe(subscribe != 0))
}

unsafe extern "C" fn cb_read_event<C: Control>(
    ext: *mut snd_ctl_ext_t,
    id: *mut a::snd_ctl_elem_id_t,
    mask: *mut c_uint,
) -> c_int {
    with_control!(c"read_event", -libc::EIO, ext, |c| {
        let Some((e, key, change)) = c.next_event() else {
            return -libc::EAGAIN;
        };
        let m = match change {
            Change::Added => a::SND_CTL_EVENT_MASK_ADD,
            Change::Removed => a::SND_CTL_EVENT_MASK_REMOVE as c_uint,
            Change::Value => a::SND_CTL_EVENT_MASK_VALUE,
        };
        // SAFETY: ctl_ext passes a valid id and mask to fill.
        unsafe {
            write_id(id, &e, key);
            *mask = m;
        }
        1
    })
}

unsafe extern "C" fn cb_poll_revents<C: Control>(
    ext: *mut snd_ctl_ext_t,
    _fds: *mut libc::pollfd,
    _nfds: c_uint,
    revents: *mut c_ushort,
) -> c_int {
    with_control!(c"poll_revents", -libc::EIO, ext, |c| {
        let r = if c.pending() { libc::POLLIN as c_ushort } else { 0 };
        // SAFETY: ctl_ext passes a valid out-pointer.
        unsafe { *revents = r };
        0
    })
}

fn callbacks<C: Control>() -> snd_ctl_ext_callback_t {
    // SAFETY: all-zero is "no callback" for every optional entry of this C table.
    let mut cb: snd_ctl_ext_callback_t = unsafe { std::mem::zeroed() };
    cb.close = Some(cb_close::<C>);
    cb.elem_count = Some(cb_elem_count::<C>);
    cb.elem_list = Some(cb_elem_list::<C>);
    cb.find_elem = Some(cb_find_elem::<C>);
    cb.get_attribute = Some(cb_get_attribute::<C>);
    cb.get_integer_info = Some(cb_get_integer_info::<C>);
    cb.read_integer = Some(cb_read_integer::<C>);
    cb.write_integer = Some(cb_write_integer::<C>);
    cb.subscribe_events = Some(cb_subscribe_events::<C>);
    cb.read_event = Some(cb_read_event::<C>);
    cb.poll_revents = Some(cb_poll_revents::<C>);
    cb
}

/// Copies `s` into a C char array, cut to fit with its NUL.
fn fill(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len() - 1);
    for (d, b) in dst.iter_mut().zip(s.bytes().take(n)) {
        *d = b as c_char;
    }
    dst[n] = 0;
}

/// A control plugin's open function: builds the plugin with `make` and wraps it in ctl_ext.
///
/// # Safety
/// The arguments must be those alsa-lib passes to a plugin's `_snd_ctl_NAME_open`.
pub unsafe fn open<C: Control>(
    handlep: *mut *mut a::snd_ctl_t,
    name: *const c_char,
    root: *mut a::snd_config_t,
    conf: *mut a::snd_config_t,
    mode: c_int,
    make: impl FnOnce(Conf, Option<Conf>) -> Result<(C, Card)>,
) -> c_int {
    guarded(c"open", -libc::EIO, || {
        // SAFETY: alsa-lib keeps both nodes alive for the duration of the open call.
        let (node, root) = unsafe { (Conf::from_raw(conf), Conf::from_raw(root)) };
        let Some(node) = node else {
            snderr(c"open", "rdmix: no configuration node");
            return -libc::EINVAL;
        };
        let (control, card) = match make(node, root) {
            Ok(c) => c,
            Err(e) => return report(c"open", e),
        };
        let (min, step, mute) = C::DB_SCALE;
        let poll_fd = control.poll_fd();
        let h = Box::into_raw(Box::new(Holder {
            // SAFETY: snd_ctl_ext_t is a C struct for which all-zero is the documented start.
            ext: unsafe { std::mem::zeroed() },
            callbacks: callbacks::<C>(),
            tlv: [
                a::SND_CTL_TLVT_DB_SCALE,
                2 * std::mem::size_of::<c_uint>() as c_uint,
                min as c_uint,
                (step as c_uint & 0xffff) | if mute { 0x10000 } else { 0 },
            ],
            control: Mutex::new(control),
        }));
        // SAFETY: h is fresh and exclusively ours until snd_ctl_ext_create succeeds; after
        // it, ctl_ext owns it and frees it through cb_close.
        unsafe {
            let ext = &mut (*h).ext;
            ext.version = SND_CTL_EXT_VERSION;
            ext.card_idx = 0;
            fill(&mut ext.id, &card.id);
            fill(&mut ext.driver, "rdmix");
            fill(&mut ext.name, &card.name);
            fill(&mut ext.longname, &card.longname);
            fill(&mut ext.mixername, "rdmix");
            ext.poll_fd = poll_fd;
            ext.callback = &(*h).callbacks;
            ext.tlv.p = (*h).tlv.as_ptr();
            ext.private_data = h as *mut c_void;
            let r = snd_ctl_ext_create(ext, name, mode);
            if r < 0 {
                drop(Box::from_raw(h));
                snderr(
                    c"open",
                    &format!("rdmix: cannot create the control: {}", super::strerror(r)),
                );
                return r;
            }
            *handlep = ext.handle;
        }
        0
    })
}

/// Exports a control plugin's entry points for alsa-lib: `_snd_ctl_NAME_open` and the
/// version symbol `__snd_ctl_NAME_open_dlsym_control_001` it checks for.
#[macro_export]
macro_rules! ctl_entry {
    ($open_fn:ident, $version_sym:ident, $make:expr) => {
        /// The control plugin's entry point, found by alsa-lib from the control's `type`.
        ///
        /// # Safety
        /// Called by alsa-lib with valid pointers, as for every control plugin open function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $open_fn(
            handlep: *mut *mut ::alsa_sys::snd_ctl_t,
            name: *const ::std::ffi::c_char,
            root: *mut ::alsa_sys::snd_config_t,
            conf: *mut ::alsa_sys::snd_config_t,
            mode: ::std::ffi::c_int,
        ) -> ::std::ffi::c_int {
            let make = $make;
            // SAFETY: these are alsa-lib's own arguments to a control plugin open function.
            unsafe { $crate::alsa::ctl::open(handlep, name, root, conf, mode, make) }
        }

        /// alsa-lib checks for this symbol to verify the plugin's API version.
        #[unsafe(no_mangle)]
        pub static $version_sym: ::std::ffi::c_char = 0;
    };
}
