//! RFC 3161 structures (core's one model for the TSA and the client): parsing never panics, and
//! whatever parses re-encodes to the same DER.
#![no_main]

use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use sigil_core::rfc3161::{TimeStampReq, TimeStampResp, TstInfo};

fn round_trips<T: for<'a> Decode<'a> + Encode>(data: &[u8]) {
    if let Ok(v) = T::from_der(data) {
        assert_eq!(v.to_der().expect("re-encodes"), data, "DER is canonical");
    }
}

fuzz_target!(|data: &[u8]| {
    round_trips::<TimeStampReq>(data);
    round_trips::<TimeStampResp>(data);
    round_trips::<TstInfo>(data);
});
