//! What a probe is, inside the daemon: the jail, the title, the command and how it comes back.
//!
//! Three types carry a probe and each belongs to one boundary: `proto::Arm` is the wire
//! request, `state::Record` a line of the state file, and `Definition` what the daemon keeps.
//! A new wire field therefore changes neither the state file nor the core.

use crate::proto::{Arm, Respawn};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The jail as named: a host PID, a container name, or `manager:name`.
    pub jail: String,
    pub title: String,
    /// Run on the host with `/bin/sh -c` when the probe fires.
    pub command: String,
    pub respawn: Respawn,
    /// Inside the jail: a number or a name from its own user database.
    pub user: Option<String>,
    pub group: Option<String>,
}

impl From<Arm> for Definition {
    fn from(arm: Arm) -> Definition {
        Definition {
            jail: arm.jail,
            title: arm.title,
            command: arm.command,
            respawn: arm.respawn,
            user: arm.user,
            group: arm.group,
        }
    }
}

impl From<&Definition> for Arm {
    /// The request that would arm this probe, for the checks a request passes.
    fn from(d: &Definition) -> Arm {
        Arm {
            command: d.command.clone(),
            jail: d.jail.clone(),
            title: d.title.clone(),
            respawn: d.respawn,
            user: d.user.clone(),
            group: d.group.clone(),
            persist: false,
        }
    }
}

impl Definition {
    /// A jail named by a host PID (or jid) is that process: it never comes back as another.
    pub fn jail_named_by_id(&self) -> bool {
        !self.jail.is_empty() && self.jail.bytes().all(|b| b.is_ascii_digit())
    }
}
