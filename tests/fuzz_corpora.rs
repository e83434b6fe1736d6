//! Replays the fuzzers' corpora of the configuration file and state file parsers
//! (fuzz/corpus/parse_config, fuzz/corpus/parse_state) on stable Rust, with the checks of their
//! fuzz targets (fuzz/fuzz_targets/): every input the fuzzer found interesting still parses or
//! is refused without a panic, and what is accepted holds up. The request decoder's corpus is
//! replayed in tests/e2e.rs (`fuzz_corpus_replays_cleanly`).

use std::fs;
use std::path::Path;

use jaildaemon::proto::{self, Arm, Request};
use jaildaemon::{config, state};

/// Every file of `fuzz/corpus/TARGET`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| fs::read(entry.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn config_corpus_replays_cleanly() {
    let inputs = corpus("parse_config");
    let (mut accepted, mut refused) = (0, 0);
    for data in &inputs {
        let Ok(text) = std::str::from_utf8(data) else {
            continue;
        };
        match config::parse(text) {
            Ok(probes) => {
                accepted += 1;
                for (n, def) in probes.iter().enumerate() {
                    // A declared probe is never a `-P` one: the file refuses `persist`.
                    assert!(!def.persist, "a declared probe with persist: {def:?}");
                    let arm: Arm = def.clone();
                    assert!(arm.validate().is_ok(), "{text:?}: {arm:?}");
                    assert!(
                        !probes[..n]
                            .iter()
                            .any(|p| p.jail == arm.jail && p.title == arm.title),
                        "{text:?}: two probes with one name"
                    );
                    let request = Request::Arm(arm);
                    let again = proto::decode::<Request>(&proto::encode(&request));
                    assert_eq!(again.unwrap(), Some(request));
                }
            }
            Err(e) => {
                refused += 1;
                let line: usize = e
                    .message
                    .strip_prefix("line ")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{text:?}: no line in {}", e.message));
                assert!(
                    (1..=text.matches('\n').count() + 1).contains(&line),
                    "{text:?}: {}",
                    e.message
                );
            }
        }
    }
    assert!(inputs.len() >= 100, "corpus missing");
    // The seeds (fuzz/corpus/parse_config/seed-*) include files that parse and one that not.
    assert!(
        accepted >= 3 && refused >= 1,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn state_corpus_replays_cleanly() {
    let inputs = corpus("parse_state");
    let mut accepted = 0;
    for data in &inputs {
        if let Ok(probes) = state::parse(data) {
            accepted += 1;
            for def in &probes {
                assert!(def.validate().is_ok(), "{def:?}");
            }
            assert_eq!(state::parse(&state::render(&probes)), Ok(probes));
        }
    }
    assert!(inputs.len() >= 100, "corpus missing");
    assert!(accepted >= 2, "the seed state files no longer parse");
}
