//! Dropping privileges once the capture socket is open.
//!
//! * Started as root: switch to `privileges.user`/`privileges.group` (supplementary groups set to
//!   that group alone, then gid, then uid, real, effective and saved), and check that root cannot
//!   be regained. Staying root needs `privileges.user = "root"` with `privileges.allow_root =
//!   true`, or `--allow-root` (which skips the switch).
//! * Started as another user (systemd `User=botd` with `AmbientCapabilities=CAP_NET_RAW`): there
//!   is no user to switch to; the capabilities are given up once the socket is open.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::PrivilegesConfig;

/// Drops privileges as configured; returns a line saying who the process runs as now.
pub fn drop_privileges(p: &PrivilegesConfig, allow_root_flag: bool) -> Result<String, String> {
    if !nix::unistd::geteuid().is_root() {
        drop_capabilities()?;
        return Ok(format!(
            "running as uid {} gid {} (started unprivileged; capabilities dropped)",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        ));
    }
    if allow_root_flag {
        return Ok("running as root (--allow-root): privileges not dropped".into());
    }
    let user = User::from_name(&p.user)
        .map_err(|e| format!("privileges.user {:?}: cannot look it up: {e}", p.user))?
        .ok_or_else(|| {
            format!(
                "privileges.user {:?}: no such user; create it (e.g. `useradd --system \
                 --no-create-home --shell /usr/sbin/nologin {}`) or run with --allow-root",
                p.user, p.user
            )
        })?;
    let group = Group::from_name(&p.group)
        .map_err(|e| format!("privileges.group {:?}: cannot look it up: {e}", p.group))?
        .ok_or_else(|| {
            format!(
                "privileges.group {:?}: no such group (create it with `groupadd --system {}`)",
                p.group, p.group
            )
        })?;
    if user.uid.is_root() {
        if p.allow_root {
            return Ok("running as root (privileges.allow_root)".into());
        }
        return Err(format!(
            "privileges.user {:?} is root; set privileges.allow_root = true or --allow-root to \
             keep running as root",
            p.user
        ));
    }
    switch(user.uid, group.gid).map_err(|e| {
        format!(
            "cannot drop privileges to {}:{} ({}:{}): {e}",
            p.user, p.group, user.uid, group.gid
        )
    })?;
    // The switch must be one-way.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || nix::unistd::geteuid().is_root() {
        return Err("dropped privileges but could regain root; refusing to run".into());
    }
    Ok(format!(
        "dropped privileges to {}:{} (uid {} gid {})",
        p.user, p.group, user.uid, group.gid
    ))
}

fn switch(uid: Uid, gid: Gid) -> nix::Result<()> {
    nix::unistd::setgroups(&[gid])?;
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)
}

/// Clears the ambient, inheritable, permitted and effective capability sets.
fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    // SAFETY: prctl with integer arguments only. Fails harmlessly (EINVAL) on kernels without
    // ambient capabilities; the capset below clears them anyway.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset(2) with a version-3 header and the two data words that version requires;
    // lowering every set is always permitted.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if r != 0 {
        return Err(format!(
            "cannot drop capabilities: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
