//! switch-cni: the CNI plugin of the fabric (see `switch_client::cni`).

use std::io::{Read, Write};
use std::process::ExitCode;

use switch_client::cni::{self, CniError};

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let (version, out) = match (
        cni::Env::read(|k| std::env::var(k).ok()),
        std::io::stdin().read_to_end(&mut stdin),
    ) {
        (Ok(env), Ok(_)) => cni::run(&env, &stdin),
        (Err(e), _) => (cni::SUPPORTED[cni::SUPPORTED.len() - 1].to_string(), Err(e)),
        (_, Err(e)) => (
            cni::SUPPORTED[cni::SUPPORTED.len() - 1].to_string(),
            Err(CniError {
                code: cni::code::IO,
                msg: format!("cannot read the network configuration from stdin: {e}"),
                details: String::new(),
            }),
        ),
    };
    let mut stdout = std::io::stdout().lock();
    let (value, status) = match out {
        Ok(Some(v)) => (v, ExitCode::SUCCESS),
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => (e.to_json(&version), ExitCode::FAILURE),
    };
    let _ = writeln!(stdout, "{value}");
    status
}
