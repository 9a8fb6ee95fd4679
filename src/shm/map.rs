//! Mappings of the shared memory both processes see, and the checks a receiver makes
//! before it maps a descriptor someone else handed it.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::sys;

/// Mappings start on pages; the layouts are laid out in pages.
pub const PAGE: usize = 4096;

enum Backing {
    Map(#[allow(dead_code)] MmapRaw),
    /// A leaked boxed slice, reclaimed in `Drop`: a raw pointer, so that moving the
    /// `Mapping` does not re-assert unique ownership over memory `base` points into.
    Heap(*mut [u64]),
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Heap(p) = *self {
            // SAFETY: p came from Box::into_raw in Mapping::heap and is dropped once.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// `len` bytes of shared (or, for tests, private) memory at a fixed address.
pub(super) struct Mapping {
    base: *mut u8,
    len: usize,
    writable: bool,
    _backing: Backing,
}

// SAFETY: the mapping is process-wide, every shared field is an atomic or is accessed by
// raw byte copies, and the pointer itself is never reassigned.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

fn refused(why: String) -> Error {
    Error::new(libc::EPROTO, why)
}

impl Mapping {
    /// Maps all of `file`, which must be exactly `len` bytes.
    pub(super) fn shared(file: &File, len: usize, writable: bool) -> std::io::Result<Mapping> {
        let mut o = MmapOptions::new();
        o.len(len);
        let map = if writable {
            o.map_raw(file)?
        } else {
            o.map_raw_read_only(file)?
        };
        Ok(Mapping {
            base: map.as_mut_ptr(),
            len,
            writable,
            _backing: Backing::Map(map),
        })
    }

    /// Zeroed, private, 8-byte aligned memory: for in-process tests and Miri, which cannot mmap.
    pub(super) fn heap(len: usize) -> Mapping {
        let heap = Box::into_raw(vec![0u64; len.div_ceil(8)].into_boxed_slice());
        Mapping {
            base: heap as *mut u64 as *mut u8,
            len,
            writable: true,
            _backing: Backing::Heap(heap),
        }
    }

    /// Checks a descriptor a peer handed over before anything maps it: it must be a memfd
    /// of exactly `len` bytes whose seals include `seals`, so that nobody can shrink it
    /// under the mapping (SIGBUS) or, with `F_SEAL_FUTURE_WRITE`, write it but its creator.
    pub(super) fn verify(fd: OwnedFd, what: &str, len: usize, seals: i32) -> Result<File> {
        let have =
            sys::memfd::seals(fd.as_fd()).map_err(|e| refused(format!("the {what} is not a sealed memfd ({e})")))?;
        if have & seals != seals {
            return Err(refused(format!(
                "the {what} lacks its seals (has {have:#x}, needs {seals:#x}): it could be cut short under us"
            )));
        }
        let file = File::from(fd);
        let size = file
            .metadata()
            .map_err(|e| refused(format!("cannot stat the {what}: {e}")))?
            .len();
        if size != len as u64 {
            return Err(refused(format!("the {what} is {size} bytes, expected {len}")));
        }
        Ok(file)
    }

    pub(super) fn base(&self) -> *mut u8 {
        self.base
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn writable(&self) -> bool {
        self.writable
    }
}
