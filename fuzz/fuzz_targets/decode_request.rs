//! The daemon's request decoder on arbitrary bytes: it must never panic, and whatever it
//! accepts must survive validation and re-encode to an equal request.
#![no_main]

use jaildaemon::proto::{self, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(request)) = proto::decode::<Request>(data) {
        if let Request::Arm(arm) = &request {
            let _ = arm.validate();
        }
        let again = proto::decode::<Request>(&proto::encode(&request));
        assert_eq!(again.ok().flatten().as_ref(), Some(&request));
    }
});
