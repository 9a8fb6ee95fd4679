//! Who may use a pump: peers are judged by the credentials the kernel recorded when they
//! connected, following `ipc_perm` and `ipc_gid` like file permissions, and on a shared key
//! no one user may hold more than their share of the lanes.

use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::sys;
use crate::wire::PumpArgs;

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

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// The owner (the pump's own user) and root always; group members when `perm` gives the
/// group read and write; everyone when it gives others read and write. Judged at accept,
/// before the peer may say anything.
pub fn admit(peer: &Credentials, args: &PumpArgs) -> Result<()> {
    let (key, perm) = (args.key, args.perm);
    let owner = sys::user::euid();
    let group = args.gid.unwrap_or_else(sys::user::egid);
    let ok =
        peer.uid == owner || peer.uid == 0 || (perm & 0o060 == 0o060 && peer.in_group(group)) || perm & 0o006 == 0o006;
    if ok {
        return Ok(());
    }
    Err(Error::new(
        libc::EACCES,
        format!(
            "rdmix: ipc_key {key:#x}: permission denied: the pump belongs to {} with ipc_perm {perm:04o} \
             (group {group}); set ipc_perm 0660 and ipc_gid to share it, or ipc_key_add_uid true for a pump per user",
            sys::user::describe(owner)
        ),
    ))
}

/// On a shared pump, whether `uid` (holding `held` lanes) may take another. The pump's
/// owner is not limited: it could stop the pump anyway.
pub fn within_share(uid: u32, held: usize, limit: u32, key: u32) -> Result<()> {
    if uid == sys::user::euid() || held < limit as usize {
        return Ok(());
    }
    Err(Error::new(
        libc::EBUSY,
        format!(
            "rdmix: ipc_key {key:#x}: {} already holds {held} lanes of this shared pump, its share \
             (ipc_user_lanes {limit}); close some of its streams, or raise ipc_user_lanes",
            sys::user::describe(uid)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn admission_follows_perm_and_group() {
        let me = sys::user::euid();
        let stranger = if me == 4242 { 4243 } else { 4242 };
        let private = PumpArgs {
            key: 1,
            perm: 0o600,
            gid: None,
            stream: Default::default(),
        };
        let group = PumpArgs {
            key: 1,
            perm: 0o660,
            gid: Some(777),
            stream: Default::default(),
        };
        let world = PumpArgs {
            key: 1,
            perm: 0o666,
            gid: None,
            stream: Default::default(),
        };
        assert!(admit(&peer(me, 0, &[]), &private).is_ok());
        assert!(admit(&peer(0, 0, &[]), &private).is_ok());
        let e = admit(&peer(stranger, 5, &[777]), &private).unwrap_err();
        assert!(e.is(libc::EACCES) && e.line().contains("ipc_perm 0600"), "{e}");
        assert!(admit(&peer(stranger, 5, &[777]), &group).is_ok());
        assert!(admit(&peer(stranger, 777, &[]), &group).is_ok());
        assert!(admit(&peer(stranger, 5, &[6]), &group).is_err());
        assert!(admit(&peer(stranger, 5, &[]), &world).is_ok());
    }

    #[test]
    fn one_user_cannot_take_every_lane() {
        let me = sys::user::euid();
        let other = if me == 4242 { 4243 } else { 4242 };
        assert!(within_share(other, 3, 4, 1).is_ok());
        let e = within_share(other, 4, 4, 1).unwrap_err();
        assert!(e.is(libc::EBUSY) && e.line().contains("ipc_user_lanes 4"), "{e}");
        assert!(within_share(me, 60, 4, 1).is_ok(), "the owner is not limited");
    }
}
