//! Who may use a pump: peers are judged by the credentials the kernel recorded when they
//! connected, following `ipc_perm` and `ipc_gid` like file permissions.

use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::sys;

/// A peer as the kernel describes it.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Credentials {
    pub fn of(sock: &OwnedFd) -> std::io::Result<Credentials> {
        let (pid, uid, gid) = sys::socket::peer_cred(sock)?;
        Ok(Credentials {
            pid,
            uid,
            gid,
            groups: sys::socket::peer_groups(sock),
        })
    }
}

/// The owner (the pump's own user) and root always; group members when `perm` gives the
/// group read and write; everyone when it gives others read and write.
pub fn admit(peer: &Credentials, key: u32, perm: u32, gid: Option<u32>) -> Result<()> {
    let owner = sys::user::euid();
    let group = gid.unwrap_or_else(sys::user::egid);
    let in_group = peer.gid == group || peer.groups.contains(&group);
    let ok = peer.uid == owner || peer.uid == 0 || (perm & 0o060 == 0o060 && in_group) || perm & 0o006 == 0o006;
    if ok {
        return Ok(());
    }
    Err(Error::new(
        libc::EACCES,
        format!(
            "rdmix: ipc_key {key:#x}: permission denied: the pump belongs to uid {owner} with ipc_perm {perm:04o} \
             (group {group}); set ipc_perm 0660 and ipc_gid to share it, or ipc_key_add_uid true for a pump per user"
        ),
    ))
}
