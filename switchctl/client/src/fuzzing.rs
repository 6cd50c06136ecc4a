//! The harness for what a container runtime hands switch-cni: the CNI_* environment and the
//! network configuration on stdin. It must never panic, every refusal is a CNI error that
//! serializes with its code and message, and nothing reaches switchd until both have been
//! read. The fuzz target `cni_input` calls it under libFuzzer, and
//! `sim/tests/fuzz_corpus.rs` replays the committed corpus through it.

use serde_json::Value;

use crate::cni::{self, Env, NetConf};

/// Input: `KEY=VALUE` lines of the environment, a NUL byte, then the configuration.
pub fn cni_input(data: &[u8]) {
    let (env_part, stdin) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(env_part);
    let vars: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |k: &str| {
        vars.iter()
            .rev()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.to_string())
    };
    match Env::read(var) {
        Ok(env) => {
            assert!(
                env.args.keys().all(|k| !k.contains(';')),
                "CNI_ARGS keys are split at ';'"
            );
            // VERSION answers without a socket: any configuration gives a JSON answer.
            let version = Env {
                command: "VERSION".into(),
                ..env
            };
            let (v, answer) = cni::run(&version, stdin);
            assert!(!v.is_empty());
            let answer = answer.expect("VERSION never fails").expect("VERSION answers");
            assert!(answer["supportedVersions"].is_array(), "{answer}");
        }
        Err(e) => assert_error(&e.to_json("1.1.0")),
    }
    if let Err(e) = NetConf::parse(stdin) {
        assert_error(&e.to_json("1.0.0"));
    }
}

fn assert_error(v: &Value) {
    assert!(v["code"].as_u64().is_some_and(|c| c > 0), "{v}");
    assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
}
