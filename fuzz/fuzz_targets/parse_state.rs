//! The state file parser on arbitrary bytes: it must never panic; what it accepts are valid
//! probes, and writing them again gives a file that reads back the same.
#![no_main]

use jaildaemon::state;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(probes) = state::parse(data) {
        for def in &probes {
            assert!(def.validate().is_ok(), "accepted an invalid probe: {def:?}");
        }
        assert_eq!(state::parse(&state::render(&probes)), Ok(probes));
    }
});
