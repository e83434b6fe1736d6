//! The configuration file parser on arbitrary bytes: it must never panic; what it refuses it
//! refuses with a line inside the file; what it accepts are valid, distinct probes that
//! travel the wire unchanged.
#![no_main]

use jaildaemon::config;
use jaildaemon::proto::{self, Arm, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file as UTF-8 and refuses it otherwise, before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(probes) => {
            for (n, def) in probes.iter().enumerate() {
                // A declared probe is never a `-P` one: the file refuses `persist`.
                assert!(!def.persist, "a declared probe with persist: {def:?}");
                let arm: Arm = def.clone();
                assert!(arm.validate().is_ok(), "accepted an invalid probe: {arm:?}");
                assert!(
                    !probes[..n]
                        .iter()
                        .any(|p| p.jail == arm.jail && p.title == arm.title),
                    "accepted two probes named {:?} in {:?}",
                    arm.title,
                    arm.jail
                );
                let request = Request::Arm(arm);
                let again = proto::decode::<Request>(&proto::encode(&request));
                assert_eq!(again.ok().flatten(), Some(request));
            }
        }
        Err(e) => {
            let line: usize = e
                .message
                .strip_prefix("line ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("an error without its line: {}", e.message));
            assert!(
                (1..=text.matches('\n').count() + 1).contains(&line),
                "line {line} is not in the file: {}",
                e.message
            );
        }
    }
});
