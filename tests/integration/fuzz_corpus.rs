//! Replays every fuzz corpus (`fuzz/corpus/<target>/`) through the target's property checks on
//! stable, so that an input that once broke a property stays fixed.

use std::path::Path;

use mcp_secure_server::fuzz::TARGETS;

#[test]
fn every_corpus_input_keeps_its_properties() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, check) in TARGETS {
        let dir = root.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{name}: the seed corpus is empty");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(
                outcome.is_ok(),
                "{name}: {} breaks a property",
                input.display()
            );
        }
    }
}
