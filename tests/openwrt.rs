//! The OpenWrt package (openwrt/): the init script's UCI -> TOML generation run by Debian's
//! `busybox sh` (OpenWrt's shell is busybox ash) on real UCI-format files, the generated file
//! checked by `botd check-config` and used by `botd analyze`; the .ipk files of
//! openwrt/make-ipk.sh taken apart and checked; shellcheck on the scripts; the small-router
//! profile (config/small.toml) against README.md.
//!
//! The init script calls OpenWrt's config_load/config_get (/lib/functions.sh) and
//! network_get_device/network_get_subnets (/lib/functions/network.sh, which ask netifd over ubus).
//! Neither uci nor ubus exist here, so tests/data/openwrt/shim.sh provides those few functions
//! with the same semantics, reading the UCI file itself and netifd's answers from a small file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BOTD: &str = env!("CARGO_BIN_EXE_botd");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A temporary folder, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("botd-openwrt-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A router's files as the init script sees them: /etc/config/botd, what netifd says of the
/// interfaces, and /usr/share/botd (the profile and the models).
struct Router {
    dir: Tmp,
}

impl Router {
    /// `uci`: the UCI file; `netifd`: lines "IFACE device|subnets|subnets6 VALUE...".
    fn new(tag: &str, uci: &str, netifd: &str) -> Router {
        let dir = Tmp::new(tag);
        let r = Router { dir };
        fs::create_dir_all(r.path("etc/config")).unwrap();
        fs::create_dir_all(r.path("usr/share/botd/models")).unwrap();
        fs::write(r.path("etc/config/botd"), uci).unwrap();
        fs::write(r.path("netifd"), netifd).unwrap();
        fs::copy(
            root().join("config/small.toml"),
            r.path("usr/share/botd/small.toml"),
        )
        .unwrap();
        for m in ["argus-rf.onnx", "ctu-rf.onnx"] {
            fs::copy(
                root().join("models").join(m),
                r.path("usr/share/botd/models").join(m),
            )
            .unwrap();
        }
        r
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.0.join(p)
    }

    /// Runs the init script's botd_write_toml under busybox sh; the TOML's path and the output.
    fn write_toml(&self) -> (PathBuf, Output) {
        let toml = self.path("var/etc/botd.toml");
        fs::create_dir_all(toml.parent().unwrap()).unwrap();
        let script = format!(
            ". '{}'; . '{}'; BOTD_SHARE='{}'; botd_write_toml '{}'",
            root().join("tests/data/openwrt/shim.sh").display(),
            root().join("openwrt/files/botd.init").display(),
            self.path("usr/share/botd").display(),
            toml.display()
        );
        let o = Command::new("busybox")
            .args(["sh", "-c", &script])
            .env("UCI_CONFIG_DIR", self.path("etc/config"))
            .env("NETIFD_STATE", self.path("netifd"))
            .output()
            .expect("busybox (Debian's busybox package; tests/run.sh installs it)");
        (toml, o)
    }

    /// The generated TOML, which must have been written.
    fn generated(&self) -> (PathBuf, toml::Table) {
        let (path, o) = self.write_toml();
        assert!(
            o.status.success(),
            "botd_write_toml failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = fs::read_to_string(&path).unwrap();
        let table = text
            .parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("generated TOML does not parse: {e}\n{text}"));
        (path, table)
    }
}

fn get<'a>(t: &'a toml::Table, section: &str, key: &str) -> &'a toml::Value {
    t.get(section)
        .and_then(|s| s.get(key))
        .unwrap_or_else(|| panic!("[{section}] {key} missing in {t:#?}"))
}

fn check_config(path: &Path) -> Output {
    Command::new(BOTD)
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap()
}

const NETIFD: &str = "lan device br-lan
lan subnets 192.168.1.1/24 10.20.30.40/20
lan subnets6 fd12:3456:789a:1::1/64 2001:db8:0:1:a:b:c:d/60
wan device eth1
wan subnets 203.0.113.7/24
";

#[test]
fn shipped_uci_file_becomes_a_toml_botd_accepts() {
    let uci = fs::read_to_string(root().join("openwrt/files/botd.config")).unwrap();
    let r = Router::new("shipped", &uci, NETIFD);
    let (path, t) = r.generated();
    // The logical interface resolved to its device; its own subnets, host bits cleared, are home.
    assert_eq!(get(&t, "capture", "interface").as_str(), Some("br-lan"));
    let home: Vec<&str> = get(&t, "network", "home")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        home,
        [
            "192.168.1.0/24",
            "10.20.16.0/20",
            "fd12:3456:789a:1:0:0:0:0/64",
            "2001:db8:0:0:0:0:0:0/60"
        ]
    );
    assert_eq!(
        get(&t, "alerts", "syslog_target").as_str(),
        Some("unix:/dev/log")
    );
    assert_eq!(get(&t, "alerts", "syslog_format").as_str(), Some("rfc3164"));
    assert_eq!(get(&t, "privileges", "user").as_str(), Some("botd"));
    let models = r.path("usr/share/botd/models");
    assert_eq!(
        get(&t, "models", "dir").as_str(),
        Some(models.to_str().unwrap())
    );
    // The small profile's tables, with the UCI keys merged into the one they share ([alerts]).
    let small: toml::Table = fs::read_to_string(root().join("config/small.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for (section, keys) in &small {
        for (key, value) in keys.as_table().unwrap() {
            assert_eq!(get(&t, section, key), value, "[{section}] {key}");
        }
    }
    let o = check_config(&path);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("interface br-lan"), "{out}");
    assert!(
        out.contains(
            "home      192.168.1.0/24, 10.20.16.0/20, fd12:3456:789a:1::/64, 2001:db8::/60"
        ),
        "{out}"
    );
    assert!(out.contains("rfc3164, facility daemon"), "{out}");
}

#[test]
fn default_profile_extra_prefixes_and_a_remote_collector() {
    let uci = "config botd 'main'
	option enabled '1'
	option interface 'guest'
	option alert_target 'udp:[2001:db8::514]:514'
	option syslog_format 'rfc5424'
	option facility 'local3'
	option sensor_name 'gw-attic'
	option profile 'default'
	list home '10.99.0.0/16'
	list home '100.64.0.0/10'
";
    let netifd = "guest device br-guest\nguest subnets 172.16.5.9/23\n";
    let r = Router::new("default", uci, netifd);
    let (path, t) = r.generated();
    assert_eq!(get(&t, "capture", "interface").as_str(), Some("br-guest"));
    assert_eq!(
        get(&t, "network", "home"),
        &toml::Value::Array(
            ["172.16.4.0/23", "10.99.0.0/16", "100.64.0.0/10"]
                .iter()
                .map(|s| toml::Value::String(s.to_string()))
                .collect()
        )
    );
    assert_eq!(
        get(&t, "alerts", "syslog_target").as_str(),
        Some("udp:[2001:db8::514]:514")
    );
    assert_eq!(get(&t, "alerts", "facility").as_str(), Some("local3"));
    assert_eq!(get(&t, "sensor", "name").as_str(), Some("gw-attic"));
    // No profile file: botd's own capacities.
    assert!(!t.contains_key("flows"), "{t:#?}");
    let o = check_config(&path);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("flows     capacity 65536 per window"), "{out}");
    assert!(
        out.contains("udp:[2001:db8::514]:514 (rfc5424, facility local3"),
        "{out}"
    );
}

#[test]
fn an_interface_without_a_device_is_refused_and_nothing_is_written() {
    let uci = "config botd 'main'\n\toption interface 'lan'\n";
    let r = Router::new("down", uci, "wan device eth1\nwan subnets 203.0.113.7/24\n");
    let (path, o) = r.write_toml();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("network interface 'lan' has no device"),
        "{err}"
    );
    assert!(!path.exists());
    // Up, but with no address yet: no home prefix to watch.
    let r = Router::new("noaddr", uci, "lan device br-lan\n");
    let (path, o) = r.write_toml();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has no address"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!path.exists());
}

#[test]
fn quotes_in_uci_values_stay_inside_the_toml_string() {
    let uci = "config botd 'main'\n\toption sensor_name 'gw\" = 1 #\\'\n";
    let r = Router::new("quote", uci, NETIFD);
    let (path, t) = r.generated();
    assert_eq!(get(&t, "sensor", "name").as_str(), Some("gw\" = 1 #\\"));
    // botd judges the value (no spaces in a sensor name), not a broken file.
    let o = check_config(&path);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("sensor.name"), "{err}");
}

#[test]
fn scripts_pass_shellcheck() {
    let o = Command::new("shellcheck")
        .current_dir(root())
        .args([
            "openwrt/files/botd.init",
            "openwrt/make-ipk.sh",
            "tests/data/openwrt/shim.sh",
            "cross/common.sh",
            "cross/build.sh",
            "cross/test.sh",
            "cross/compare.sh",
            "cross/size.sh",
        ])
        .output()
        .expect("shellcheck (Debian's shellcheck package; tests/run.sh installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// `tar -tvzf` of an archive (or of stdin with "-"): (mode, size, name) per entry.
fn listing(archive: &Path) -> Vec<(String, u64, String)> {
    let o = run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-tvzf")
        .arg(archive));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f[1], "0/0", "owner of {l}");
            (f[0].to_string(), f[2].parse().unwrap(), f[5].to_string())
        })
        .collect()
}

/// Unpacks ARCHIVE's member MEMBER (a .tar.gz) into DIR and returns the member's path.
fn member(archive: &Path, name: &str, dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(format!("./{name}")));
    dir.join(name)
}

fn control_fields(control_tgz: &Path, dir: &Path) -> BTreeMap<String, String> {
    run(Command::new("tar")
        .arg("-xzf")
        .arg(control_tgz)
        .arg("-C")
        .arg(dir));
    fs::read_to_string(dir.join("control"))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn ipk_packages_hold_the_files_and_install_into_a_working_sensor() {
    let tmp = Tmp::new("ipk");
    let out = tmp.0.join("out");
    let o = run(Command::new("bash")
        .arg(root().join("openwrt/make-ipk.sh"))
        .arg(BOTD)
        .arg("x86_64")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    let said = String::from_utf8_lossy(&o.stdout);
    let version = env!("CARGO_PKG_VERSION");
    let botd_ipk = out.join(format!("botd_{version}-r1_x86_64.ipk"));
    let models_ipk = out.join(format!("botd-models_{version}-r1_all.ipk"));
    assert!(said.contains(botd_ipk.to_str().unwrap()), "{said}");

    // The outer archive: ipkg-build's three members, in its order.
    for ipk in [&botd_ipk, &models_ipk] {
        let names: Vec<String> = listing(ipk).into_iter().map(|e| e.2).collect();
        assert_eq!(
            names,
            ["./debian-binary", "./control.tar.gz", "./data.tar.gz"],
            "{}",
            ipk.display()
        );
    }
    let unpacked = tmp.0.join("botd");
    let debian_binary = member(&botd_ipk, "debian-binary", &unpacked);
    assert_eq!(fs::read_to_string(debian_binary).unwrap(), "2.0\n");
    let data = member(&botd_ipk, "data.tar.gz", &unpacked);
    let files: Vec<(String, u64, String)> = listing(&data)
        .into_iter()
        .filter(|e| !e.0.starts_with('d'))
        .collect();
    let binary_size = fs::metadata(BOTD).unwrap().len();
    let small_size = fs::metadata(root().join("config/small.toml"))
        .unwrap()
        .len();
    let expect = |mode: &str, size: u64, name: &str| (mode.to_string(), size, name.to_string());
    let init_size = fs::metadata(root().join("openwrt/files/botd.init"))
        .unwrap()
        .len();
    let uci_size = fs::metadata(root().join("openwrt/files/botd.config"))
        .unwrap()
        .len();
    let caps_size = fs::metadata(root().join("openwrt/files/botd.capabilities.json"))
        .unwrap()
        .len();
    assert_eq!(
        files,
        [
            expect("-rw-r--r--", caps_size, "./etc/capabilities/botd.json"),
            expect("-rw-------", uci_size, "./etc/config/botd"),
            expect("-rwxr-xr-x", init_size, "./etc/init.d/botd"),
            expect("-rwxr-xr-x", binary_size, "./usr/sbin/botd"),
            expect("-rw-r--r--", small_size, "./usr/share/botd/small.toml"),
        ]
    );
    let control = control_fields(&member(&botd_ipk, "control.tar.gz", &unpacked), &unpacked);
    assert_eq!(control["Package"], "botd");
    assert_eq!(control["Version"], format!("{version}-r1"));
    assert_eq!(control["Architecture"], "x86_64");
    assert_eq!(control["Depends"], "botd-models");
    assert_eq!(control["Require-User"], "botd:botd");
    let installed: u64 = files.iter().map(|f| f.1).sum();
    assert_eq!(control["Installed-Size"], installed.to_string());
    assert_eq!(
        fs::read_to_string(unpacked.join("conffiles")).unwrap(),
        "/etc/config/botd\n"
    );
    for script in ["postinst", "prerm"] {
        let text = fs::read_to_string(unpacked.join(script)).unwrap();
        assert!(text.contains("/lib/functions.sh"), "{script}: {text}");
    }

    let models = tmp.0.join("models");
    let mdata = member(&models_ipk, "data.tar.gz", &models);
    let mfiles: Vec<String> = listing(&mdata)
        .into_iter()
        .filter(|e| !e.0.starts_with('d'))
        .map(|e| e.2)
        .collect();
    assert_eq!(
        mfiles,
        [
            "./usr/share/botd/models/argus-rf.onnx",
            "./usr/share/botd/models/ctu-rf.onnx"
        ]
    );
    let mcontrol = control_fields(&member(&models_ipk, "control.tar.gz", &models), &models);
    assert_eq!(mcontrol["Architecture"], "all");
    assert!(!mcontrol.contains_key("Depends"));

    // Both data archives installed into one root, as opkg would: the packaged init script,
    // UCI file and profile give a TOML the packaged binary accepts and analyses a capture with,
    // using the packaged models.
    let sysroot = tmp.0.join("root");
    fs::create_dir_all(&sysroot).unwrap();
    for d in [&data, &mdata] {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(d)
            .arg("-C")
            .arg(&sysroot));
    }
    let installed_botd = sysroot.join("usr/sbin/botd");
    assert_eq!(fs::read(&installed_botd).unwrap(), fs::read(BOTD).unwrap());
    fs::write(sysroot.join("netifd"), NETIFD).unwrap();
    let toml = sysroot.join("var/etc/botd.toml");
    fs::create_dir_all(toml.parent().unwrap()).unwrap();
    let script = format!(
        ". '{}'; . '{}'; BOTD_SHARE='{}'; botd_write_toml '{}'",
        root().join("tests/data/openwrt/shim.sh").display(),
        sysroot.join("etc/init.d/botd").display(),
        sysroot.join("usr/share/botd").display(),
        toml.display()
    );
    run(Command::new("busybox")
        .args(["sh", "-c", &script])
        .env("UCI_CONFIG_DIR", sysroot.join("etc/config"))
        .env("NETIFD_STATE", sysroot.join("netifd")));
    run(Command::new(&installed_botd).arg("check-config").arg(&toml));
    let capture = root().join("tests/data/demo.pcap");
    let o = run(Command::new(&installed_botd)
        .arg("analyze")
        .arg("--config")
        .arg(&toml)
        .arg(&capture));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("host "), "{table}");
}

/// README.md's table of the small profile: (key, default, small) per row.
fn readme_capacities() -> Vec<(String, String, String)> {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## On an OpenWrt router")
        .nth(1)
        .expect("README.md: section \"On an OpenWrt router\"");
    section
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // | `section.key` | default | small |
            if cells.len() == 5 && cells[1].starts_with('`') && cells[1].contains('.') {
                Some((
                    cells[1].trim_matches('`').to_string(),
                    cells[2].to_string(),
                    cells[3].to_string(),
                ))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn small_profile_passes_check_config_and_is_what_readme_says() {
    let path = root().join("config/small.toml");
    let o = check_config(&path);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let small: toml::Table = fs::read_to_string(&path).unwrap().parse().unwrap();
    let defaults: toml::Table = fs::read_to_string(root().join("config/botd.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let rows = readme_capacities();
    let mut keys = 0;
    for (section, table) in &small {
        for (key, value) in table.as_table().unwrap() {
            keys += 1;
            let name = format!("{section}.{key}");
            let row = rows
                .iter()
                .find(|r| r.0 == name)
                .unwrap_or_else(|| panic!("README.md's table has no row for {name}"));
            assert_eq!(row.2, value.to_string(), "{name}: small");
            assert_eq!(
                row.1,
                get(&defaults, section, key).to_string(),
                "{name}: default"
            );
        }
    }
    assert_eq!(keys, rows.len(), "README rows {rows:?}");
    // Every capacity is smaller than the default: the profile only shrinks.
    for (section, table) in &small {
        for (key, value) in table.as_table().unwrap() {
            assert!(
                value.as_integer().unwrap() < get(&defaults, section, key).as_integer().unwrap(),
                "[{section}] {key}"
            );
        }
    }
}
