//! Dropping privileges once the capture socket is open.
//!
//! * Started as root: switch to `privileges.user`/`privileges.group` (supplementary groups set to
//!   that group alone, then gid, then uid, real, effective and saved), and check that root cannot
//!   be regained. With `keep_net_admin` (`[response] mode = "enforce"`) CAP_NET_ADMIN alone
//!   survives the switch, raised as an ambient capability so the `nft` botd runs inherits it. Staying root needs `privileges.user = "root"` with `privileges.allow_root =
//!   true`, or `--allow-root` (which skips the switch).
//! * Started as another user (systemd `User=botd` with `AmbientCapabilities=CAP_NET_RAW`): there
//!   is no user to switch to; the capabilities are given up once the socket is open (all but
//!   CAP_NET_ADMIN with `keep_net_admin`, which must then be among them).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::PrivilegesConfig;

/// Drops privileges as configured; returns a line saying who the process runs as now.
/// `keep_net_admin`: CAP_NET_ADMIN stays (and passes to programs botd runs) for the quarantine.
pub fn drop_privileges(
    p: &PrivilegesConfig,
    allow_root_flag: bool,
    keep_net_admin: bool,
) -> Result<String, String> {
    let keep = if keep_net_admin {
        1u32 << CAP_NET_ADMIN
    } else {
        0
    };
    let kept = if keep_net_admin {
        " but CAP_NET_ADMIN (for [response])"
    } else {
        ""
    };
    if !nix::unistd::geteuid().is_root() {
        drop_capabilities(keep)?;
        return Ok(format!(
            "running as uid {} gid {} (started unprivileged; capabilities dropped{kept})",
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
    if keep_net_admin {
        // SAFETY: prctl with integer arguments only: the permitted set survives the uid switch.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, 0, 0, 0) };
    }
    switch(user.uid, group.gid).map_err(|e| {
        format!(
            "cannot drop privileges to {}:{} ({}:{}): {e}",
            p.user, p.group, user.uid, group.gid
        )
    })?;
    if keep_net_admin {
        drop_capabilities(keep)?;
        // SAFETY: as above; later uid changes (none) would clear the capabilities again.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0 as libc::c_ulong, 0, 0, 0) };
    }
    // The switch must be one-way.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || nix::unistd::geteuid().is_root() {
        return Err("dropped privileges but could regain root; refusing to run".into());
    }
    Ok(format!(
        "dropped privileges to {}:{} (uid {} gid {}){kept}",
        p.user, p.group, user.uid, group.gid
    ))
}

fn switch(uid: Uid, gid: Gid) -> nix::Result<()> {
    nix::unistd::setgroups(&[gid])?;
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)
}

const CAP_NET_ADMIN: u32 = 12;

/// Clears the ambient, inheritable, permitted and effective capability sets but `keep` (a mask of
/// capabilities below 32), which is also raised as ambient (programs botd runs inherit it).
fn drop_capabilities(keep: u32) -> Result<(), String> {
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
    let data = [
        Data {
            effective: keep,
            permitted: keep,
            inheritable: keep,
        },
        Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        },
    ];
    // SAFETY: capset(2) with a version-3 header and the two data words that version requires;
    // lowering every set is always permitted.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) };
    if r != 0 {
        return Err(format!(
            "cannot drop capabilities{}: {}",
            if keep != 0 {
                " but CAP_NET_ADMIN (needed by [response] mode = \"enforce\"; was it given?)"
            } else {
                ""
            },
            std::io::Error::last_os_error()
        ));
    }
    for cap in (0..32).filter(|c| keep & (1 << c) != 0) {
        // SAFETY: prctl with integer arguments only; the capability is permitted and
        // inheritable (set above), which PR_CAP_AMBIENT_RAISE requires.
        let r = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            )
        };
        if r != 0 {
            return Err(format!(
                "cannot pass capability {cap} on to nft: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
