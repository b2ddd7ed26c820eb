#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hsm_daemon::fuzzing::Target::Requests.run(data);
});
