//! Firing a probe from inside real images, with the triggers README.md gives for each (read
//! from its "Triggering from inside" table, so that the two cannot drift apart): a busybox
//! root and a slim root without procps (both with nothing of the host's), and the host's own
//! tools for procps. Titles hold spaces and are longer than the 15 bytes of a process name.
//! Each trigger also runs for a title that is only a prefix of the probe's, which must fire
//! nothing, and `pkill -f` without `-x` is shown to kill the shell that runs it.

mod util;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use util::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// One with spaces (and 19 bytes), one without spaces and longer than 15 bytes.
const TITLES: [&str; 2] = ["route config update", "snapshot-of-the-db-volume"];

/// The README's trigger for images that have `what` (a word of the table's first column),
/// with TITLE still in it.
fn readme_trigger(what: &str) -> String {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let table = readme
        .split("### Triggering from inside")
        .nth(1)
        .expect("README.md has a section 'Triggering from inside'");
    let row = table
        .lines()
        .take_while(|l| !l.starts_with("###"))
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        .find(|l| l.split('|').nth(1).is_some_and(|c| c.contains(what)))
        .unwrap_or_else(|| panic!("no row for {what} in README.md's trigger table"));
    let cell = row.split('|').nth(2).unwrap().trim();
    let trigger = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`'));
    let trigger = trigger.unwrap_or_else(|| panic!("not one `command`: {cell}"));
    assert!(trigger.contains("'TITLE'"), "{trigger}");
    trigger.to_string()
}

/// Runs `sh -c 'TRIGGER; echo survived'` in the jail's own root, as root, for `title`.
fn run_trigger(jail: &Jail, trigger: &str, title: &str) -> std::process::Output {
    let script = format!("{}; echo survived", trigger.replace("TITLE", title));
    jail.exec_rooted_as(0, &["sh", "-c", &script])
}

/// For each title: arms a single-shot probe in `jail`; `trigger` with a prefix of the title
/// fires nothing and leaves the probe; `trigger` with the title fires it once, and the shell
/// that ran it lives on.
fn fires_exactly(test: &str, jail: &Jail, daemon: &Daemon, dir: &TempDir, trigger: &str) {
    static ROUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for title in TITLES {
        let round = ROUND.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fired = dir.path(&format!("fired-{round}"));
        let command = format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display());
        daemon.arm(&["-c", &command, "-j", &jail.spec(), "-t", title]);
        let prefix = &title[..title.len() - 1];
        let out = run_trigger(jail, trigger, prefix);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("survived"),
            "{test}: {trigger} for {prefix:?}: {out:?}"
        );
        sleep(Duration::from_millis(300));
        assert_eq!(lines(&fired), 0, "{test}: {trigger} for {prefix:?} fired");
        assert_eq!(jail.probes(title).len(), 1, "{test}: the probe is gone");

        let out = run_trigger(jail, trigger, title);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("survived"),
            "{test}: {trigger} for {title:?}: {out:?}"
        );
        assert!(
            wait_for(Duration::from_secs(5), || lines(&fired) == 1),
            "{test}: {trigger} for {title:?} did not fire: {out:?}\n{}",
            daemon.log_text()
        );
        assert_eq!(fs::read_to_string(&fired).unwrap(), format!("{title}\n"));
    }
}

#[test]
fn busybox_images_fire_with_killall_pidof_and_the_proc_loop() {
    let test = "busybox_images_fire_with_killall_pidof_and_the_proc_loop";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let root = dir.path("rootfs");
    if busybox_root(&root).is_none() {
        return;
    }
    let daemon = Daemon::start(&dir);
    let jail = Jail::in_root(&root);
    // The image has no pkill: the first thing a user would try fails there.
    let out = jail.exec_rooted_as(0, &["sh", "-c", "pkill -HUP -x -f x"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    for what in ["busybox", "pidof", "a shell"] {
        fires_exactly(test, &jail, &daemon, &dir, &readme_trigger(what));
    }
}

#[test]
fn images_without_procps_fire_with_pidof_and_the_proc_loop() {
    let test = "images_without_procps_fire_with_pidof_and_the_proc_loop";
    if !root_or_skip(test) {
        return;
    }
    let dir = TempDir::new();
    let root = dir.path("rootfs");
    if slim_root(&root).is_none() {
        return;
    }
    let daemon = Daemon::start(&dir);
    let jail = Jail::in_root(&root);
    for missing in ["pkill", "killall"] {
        let out = jail.exec_rooted_as(0, &["sh", "-c", &format!("{missing} -HUP x")]);
        assert_eq!(out.status.code(), Some(127), "{missing}: {out:?}");
    }
    for what in ["pidof", "a shell"] {
        fires_exactly(test, &jail, &daemon, &dir, &readme_trigger(what));
    }
    // As README.md warns: sysvinit's pidof matches a title with a blank by its first 15
    // bytes, which the probe takes as its process name (comm).
    let fired = dir.path("fired-by-comm");
    let title = TITLES[0];
    let command = format!("echo \"$JAILDAEMON_TITLE\" >> {}", fired.display());
    daemon.arm(&["-c", &command, "-j", &jail.spec(), "-t", title]);
    run_trigger(&jail, &readme_trigger("pidof"), &title[..15]);
    assert!(
        wait_for(Duration::from_secs(5), || lines(&fired) == 1),
        "pidof no longer matches by the first 15 bytes: fix README.md"
    );
}

#[test]
fn procps_fires_with_pkill_x_and_plain_pkill_f_kills_its_own_shell() {
    let test = "procps_fires_with_pkill_x_and_plain_pkill_f_kills_its_own_shell";
    let Some(world) = World::new(test) else {
        return;
    };
    let (jail, daemon) = (&world.jail, &world.daemon);
    fires_exactly(test, jail, daemon, &world.dir, &readme_trigger("procps"));

    // Without -x, the shell whose command line holds the title is signalled too: the probe
    // fires, and the shell dies of SIGHUP before its next command.
    let title = TITLES[0];
    daemon.arm(&[
        "-c",
        &format!("echo plain >> {}", world.fired.display()),
        "-j",
        &jail.spec(),
        "-t",
        title,
    ]);
    let out = run_trigger(jail, "pkill -HUP -f 'TITLE'", title);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("survived"),
        "{out:?}"
    );
    // nsenter passes on how its child ended: killed by SIGHUP.
    let hup = out.status.signal() == Some(libc::SIGHUP) || out.status.code() == Some(129);
    assert!(hup, "{:?}", out.status);
    assert!(
        wait_for(Duration::from_secs(5), || lines(&world.fired) == 1),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn the_man_page_gives_the_same_triggers() {
    let page = fs::read_to_string(Path::new(ROOT).join("jaildaemon.8")).unwrap();
    let section = page
        .split(".Ss Triggering from inside the jail")
        .nth(1)
        .expect("jaildaemon.8 has a subsection 'Triggering from inside the jail'");
    let literal: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with(".Bd -literal"))
        .skip(1)
        .take_while(|l| *l != ".Ed")
        .collect();
    let readme: Vec<String> = ["procps", "busybox", "pidof", "a shell"]
        .map(readme_trigger)
        .to_vec();
    assert_eq!(literal, readme);
}
