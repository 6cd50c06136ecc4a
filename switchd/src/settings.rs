//! Where switchd's settings come from, strongest first: a flag on the command line, its
//! `SWITCHD_*` environment variable (`SWITCHD_STATE_DIR` for `--state-dir`), a line of the
//! TOML file `--config` names (`state-dir = "/var/lib/switchd"`), the built-in default.
//!
//! The file's keys are the long flags without their dashes; a flag given several times takes
//! an array (`join = ["10.0.0.1", "10.0.0.2"]`). An unknown key, a value of the wrong shape or
//! a file that cannot be read stops switchd with a sentence naming it.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

/// The prefix of the variables that set switchd's flags.
pub const ENV_PREFIX: &str = "SWITCHD_";

/// The id of the flag naming the settings file.
const CONFIG: &str = "config";

/// `cmd` with every flag but the hidden ones (`--man`, for packaging) also read from its
/// `SWITCHD_*` variable.
pub fn with_env(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        if a.is_hide_set() {
            return a;
        }
        let var = format!("{ENV_PREFIX}{}", a.get_id().as_str().to_uppercase());
        a.env(var)
    })
}

/// What went wrong reading the settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The command line (or a variable) is not what the flags take; also `--help` and
    /// `--version`, which clap prints.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The settings file is unreadable or wrong.
    #[error("{0}")]
    File(String),
}

/// The matches of `argv` against `cmd` (built [`with_env`]), completed by the settings file
/// `--config` names for every setting neither a flag nor a variable gave.
///
/// # Errors
/// As [`SettingsError`].
pub fn matches(cmd: &Command, argv: &[OsString]) -> Result<ArgMatches, SettingsError> {
    // A first reading finds the file and what flags and variables say; what it lacks (a
    // flag another one requires, say) the file may give, so only the second reading judges.
    let first = cmd.clone().ignore_errors(true).try_get_matches_from(argv)?;
    let Some(path) = first.get_one::<std::path::PathBuf>(CONFIG).cloned() else {
        return Ok(cmd.clone().try_get_matches_from(argv)?);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SettingsError::File(format!("cannot read --config {}: {e}", path.display())))?;
    let from_file = file_args(cmd, &first, &path, &text)?;
    let mut all = argv[..1].to_vec();
    all.extend(from_file);
    all.extend_from_slice(&argv[1..]);
    Ok(cmd.clone().try_get_matches_from(all)?)
}

/// The flags the settings file `text` (at `path`) adds: one per value of each key that
/// neither a flag nor a variable set (per `given`).
fn file_args(cmd: &Command, given: &ArgMatches, path: &Path, text: &str) -> Result<Vec<OsString>, SettingsError> {
    let bad = |what: String| SettingsError::File(format!("{}: {what}", path.display()));
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && a.get_id() != CONFIG)
            .ok_or_else(|| {
                bad(format!(
                    "unknown setting {key:?}: the settings are switchd's long flags without their dashes, like state-dir"
                ))
            })?;
        let id = arg.get_id().as_str();
        if matches!(
            given.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let many = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            toml::Value::Array(items) if many => items,
            toml::Value::Array(_) => return Err(bad(format!("{key} takes one value, not a list"))),
            one => vec![one],
        };
        for v in values {
            let s = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(bad(format!(
                        "{key} = {other}: a setting is a string, a number or a boolean{}",
                        if many { ", or a list of them" } else { "" }
                    )))
                }
            };
            out.push(OsString::from(format!("--{key}={s}")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser, Debug, PartialEq)]
    struct Flags {
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        #[arg(long, default_value = "/var/lib/x")]
        state_dir: String,
        #[arg(long, default_value_t = 7946)]
        gossip_port: u16,
        #[arg(long, value_delimiter = ',')]
        join: Vec<String>,
        #[arg(long, requires = "advertise")]
        cluster_dir: Option<String>,
        #[arg(long)]
        advertise: Option<String>,
    }

    fn parse(args: &[&str], file: &str) -> Result<Flags, String> {
        let dir = std::env::temp_dir().join(format!("switchd-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // One file per call: the tests run in parallel.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}.toml"));
        std::fs::write(&path, file).unwrap();
        let mut argv = vec![OsString::from("switchd"), format!("--config={}", path.display()).into()];
        argv.extend(args.iter().map(OsString::from));
        let cmd = Flags::command();
        let m = matches(&cmd, &argv).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&path);
        m.map(|m| Flags::from_arg_matches(&m).unwrap())
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let file = "state-dir = \"/srv/switchd\"\ngossip-port = 8000\njoin = [\"a\", \"b\"]\n";
        let f = parse(&[], file).unwrap();
        assert_eq!(
            (f.state_dir.as_str(), f.gossip_port, f.join.clone()),
            ("/srv/switchd", 8000, vec!["a".to_string(), "b".to_string()])
        );
        let f = parse(&["--gossip-port", "9000", "--join", "c"], file).unwrap();
        assert_eq!(
            (f.state_dir.as_str(), f.gossip_port, f.join),
            ("/srv/switchd", 9000, vec!["c".to_string()])
        );
        // A flag the file's setting requires is satisfied by the file.
        let f = parse(&["--cluster-dir", "/c"], "advertise = \"10.0.0.1\"\n").unwrap();
        assert_eq!(f.advertise.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn a_variable_beats_the_file() {
        // A variable every process has stands in for SWITCHD_STATE_DIR (setting one here
        // would race the other tests' threads).
        let cmd = with_env(Flags::command()).mut_arg("state_dir", |a| a.env("PATH"));
        let path = std::env::temp_dir().join(format!("switchd-settings-env-{}.toml", std::process::id()));
        std::fs::write(&path, "gossip-port = 8000\nstate-dir = \"/srv\"\n").unwrap();
        let argv: Vec<OsString> = vec!["switchd".into(), format!("--config={}", path.display()).into()];
        let m = matches(&cmd, &argv).unwrap();
        let _ = std::fs::remove_file(&path);
        let f = Flags::from_arg_matches(&m).unwrap();
        let var = std::env::var("PATH").unwrap();
        assert_eq!((f.gossip_port, f.state_dir.as_str()), (8000, var.as_str()));
        // Every flag has its variable, named after it.
        let cmd = with_env(Flags::command());
        let state = cmd.get_arguments().find(|a| a.get_id() == "state_dir").unwrap();
        assert_eq!(state.get_env().and_then(|v| v.to_str()), Some("SWITCHD_STATE_DIR"));
        let hidden = with_env(Flags::command().arg(clap::Arg::new("man").long("man").hide(true)));
        let man = hidden.get_arguments().find(|a| a.get_id() == "man").unwrap();
        assert_eq!(man.get_env(), None, "a hidden flag has no variable");
    }

    #[test]
    fn a_bad_file_is_named_with_what_is_wrong() {
        for (file, says) in [
            (
                "nonsense = 1\n",
                "unknown setting \"nonsense\": the settings are switchd's long flags",
            ),
            ("state_dir = \"/x\"\n", "unknown setting \"state_dir\""),
            ("config = \"/x\"\n", "unknown setting \"config\""),
            ("state-dir = [\"/x\"]\n", "state-dir takes one value, not a list"),
            (
                "gossip-port = 1.5\n",
                "gossip-port = 1.5: a setting is a string, a number or a boolean",
            ),
            ("state-dir = \n", "string values must be quoted"),
        ] {
            let e = parse(&[], file).unwrap_err();
            assert!(e.contains(says), "{file}: {e}");
            assert!(e.contains(".toml: "), "the file is named: {e}");
        }
        let e = parse(&[], "gossip-port = 99999\n").unwrap_err();
        assert!(e.contains("99999"), "{e}");
        let cmd = Flags::command();
        let argv: Vec<OsString> = vec!["switchd".into(), "--config=/nonexistent/switchd.toml".into()];
        let e = matches(&cmd, &argv).unwrap_err().to_string();
        assert!(e.starts_with("cannot read --config /nonexistent/switchd.toml: "), "{e}");
    }
}
