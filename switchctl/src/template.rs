//! Go templates over the API's objects, as Docker's `--format` and `-f` take them: the
//! template language is gtmpl's (Go's text/template), the data an object's JSON, and the
//! functions Go's and Docker's own (`json`, `upper`, `lower`, `title`, `join`, `split`).
//!
//! A map or list printed whole shows in gtmpl's own (Rust debug) form where Docker shows Go's
//! notation: `{{json .X}}` is the way to print one.

use gtmpl::{FuncError, Value};

/// A parsed template.
pub(crate) struct Template(gtmpl::Template);

impl Template {
    /// Parses `text`.
    ///
    /// # Errors
    /// A sentence naming the template and what is wrong with it.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Template> {
        let mut t = gtmpl::Template::default();
        t.add_funcs(&[
            ("json", json as gtmpl::Func),
            ("upper", upper as gtmpl::Func),
            ("lower", lower as gtmpl::Func),
            ("title", title as gtmpl::Func),
            ("join", join as gtmpl::Func),
            ("split", split as gtmpl::Func),
        ]);
        t.parse(text)
            .map_err(|e| anyhow::anyhow!("template parsing error: {e} (in {text:?})"))?;
        Ok(Template(t))
    }

    /// The template applied to `data`.
    ///
    /// # Errors
    /// A field or function the template uses does not apply to `data`.
    pub(crate) fn render(&self, data: &serde_json::Value) -> anyhow::Result<String> {
        self.0
            .render(&gtmpl::Context::from(value(data)))
            .map_err(|e| anyhow::anyhow!("template: {e}"))
    }
}

/// JSON as a template value: maps' fields and lists' items reachable, numbers numbers.
fn value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        serde_json::Value::Object(o) => Value::Map(o.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
    }
}

/// A template value back as JSON.
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(m) | Value::Map(m) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                m.iter().map(|(k, v)| (k, to_json(v))).collect();
            serde_json::to_value(sorted).unwrap_or(serde_json::Value::Null)
        }
    }
}

fn one<'a>(name: &str, args: &'a [Value]) -> Result<&'a Value, FuncError> {
    match args {
        [v] => Ok(v),
        _ => Err(FuncError::ExactlyXArgs(name.to_string(), 1)),
    }
}

fn text(name: &str, args: &[Value]) -> Result<String, FuncError> {
    match one(name, args)? {
        Value::String(s) => Ok(s.clone()),
        other => Ok(other.to_string()),
    }
}

/// `{{json .X}}`: X as JSON.
fn json(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(to_json(one("json", args)?).to_string()))
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text("upper", args)?.to_uppercase()))
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(text("lower", args)?.to_lowercase()))
}

/// `{{title .X}}`: each word's first letter upper case.
fn title(args: &[Value]) -> Result<Value, FuncError> {
    let t = text("title", args)?;
    let mut out = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

/// `{{join .List ", "}}`.
fn join(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::Array(items), Value::String(sep)] => Ok(Value::String(
            items.iter().map(ToString::to_string).collect::<Vec<_>>().join(sep),
        )),
        [_, _] => Err(FuncError::Generic("join takes a list and a separator".into())),
        _ => Err(FuncError::ExactlyXArgs("join".into(), 2)),
    }
}

/// `{{split .X ","}}`.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::String(s), Value::String(sep)] => Ok(Value::Array(
            s.split(sep.as_str()).map(|p| Value::String(p.to_string())).collect(),
        )),
        [_, _] => Err(FuncError::Generic("split takes a string and a separator".into())),
        _ => Err(FuncError::ExactlyXArgs("split".into(), 2)),
    }
}

/// How a list of objects is printed: Docker's table, JSON (one object a line), or a template
/// per object (with a header row when it starts with `table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListFormat {
    /// The default columns.
    Table,
    /// One JSON object a line.
    Json,
    /// A template per object; `table` makes it columns with a header.
    Template {
        /// The template, `table ` taken off.
        text: String,
        /// Whether it began with `table`.
        table: bool,
    },
}

impl ListFormat {
    /// `--format`'s value; a template's written-out `\t` and `\n` become the characters.
    pub(crate) fn parse(s: &str) -> ListFormat {
        match s.trim() {
            "" | "table" => ListFormat::Table,
            "json" => ListFormat::Json,
            t => match t.strip_prefix("table ") {
                Some(rest) => ListFormat::Template {
                    text: unescape(rest),
                    table: true,
                },
                None => ListFormat::Template {
                    text: unescape(s),
                    table: false,
                },
            },
        }
    }
}

/// `\t` and `\n` written out in a template, as Docker's CLI reads them.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Prints `rows` (each object's JSON) as `format` says, with `columns` (JSON key, header)
/// for the default table and for a `table` template's header.
///
/// # Errors
/// The template is malformed or does not apply to a row.
pub(crate) fn print_list(
    format: &ListFormat,
    rows: &[serde_json::Value],
    columns: &[(&str, &str)],
) -> anyhow::Result<()> {
    match format {
        ListFormat::Json => {
            for r in rows {
                println!("{r}");
            }
        }
        ListFormat::Table => {
            let headers: Vec<&str> = columns.iter().map(|(_, h)| *h).collect();
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| columns.iter().map(|(k, _)| shown(&r[*k])).collect())
                .collect();
            print!("{}", crate::table::render(&headers, &cells));
        }
        ListFormat::Template { text, table } => {
            let t = Template::parse(text)?;
            let lines: Vec<String> = rows.iter().map(|r| t.render(r)).collect::<anyhow::Result<_>>()?;
            if !table {
                for l in lines {
                    println!("{l}");
                }
                return Ok(());
            }
            // The header: the template over each field's column name.
            let header_data = serde_json::Value::Object(
                columns
                    .iter()
                    .map(|(k, h)| (k.to_string(), serde_json::Value::String(h.to_string())))
                    .collect(),
            );
            let header = t.render(&header_data)?;
            let split = |l: &str| l.split('\t').map(str::to_string).collect::<Vec<_>>();
            let headers = split(&header);
            let cells: Vec<Vec<String>> = lines.iter().map(|l| split(l)).collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            print!("{}", crate::table::render(&headers, &cells));
        }
    }
    Ok(())
}

/// `inspect`: the objects as an indented JSON array, or `template` applied to each (a line
/// each), as Docker's `-f`.
///
/// # Errors
/// The template is malformed or does not apply to an object.
pub(crate) fn print_inspected<T: serde::Serialize>(template: Option<&str>, found: &[T]) -> anyhow::Result<()> {
    let Some(text) = template.filter(|t| *t != "json") else {
        println!("{}", crate::pretty(&found));
        return Ok(());
    };
    let t = Template::parse(&unescape(text))?;
    for f in found {
        println!("{}", t.render(&serde_json::to_value(f)?)?);
    }
    Ok(())
}

/// A JSON value as a table cell shows it: strings bare, the rest as JSON.
fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_reach_fields_and_docker_s_functions() {
        let net = json!({"Name": "my_net", "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}, {"Subnet": "fd00::/64"}]},
                         "Labels": {"b": "2", "a": "1"}, "EnableIPv6": true, "Containers": {}});
        let r = |t: &str| Template::parse(t).unwrap().render(&net).unwrap();
        assert_eq!(r("{{.Name}}"), "my_net");
        assert_eq!(r("{{range .IPAM.Config}}{{.Subnet}} {{end}}"), "10.0.0.0/24 fd00::/64 ");
        assert_eq!(r("{{json .Labels}}"), r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            r("{{json .IPAM.Config}}"),
            r#"[{"Subnet":"10.0.0.0/24"},{"Subnet":"fd00::/64"}]"#
        );
        assert_eq!(
            r("{{upper .Name}} {{title \"my net\"}} {{lower \"A\"}}"),
            "MY_NET My Net a"
        );
        assert_eq!(r("{{.EnableIPv6}} {{len .IPAM.Config}}"), "true 2");
        assert_eq!(r("{{join (split \"a,b\" \",\") \"+\"}}"), "a+b");
        assert_eq!(r("{{if .EnableIPv6}}dual{{end}}"), "dual");
        let e = Template::parse("{{.Name").err().unwrap().to_string();
        assert!(e.starts_with("template parsing error: "), "{e}");
        assert!(Template::parse("{{nosuchfunc .Name}}").is_err());
    }

    #[test]
    fn list_formats_are_docker_s() {
        assert_eq!(ListFormat::parse("table"), ListFormat::Table);
        assert_eq!(ListFormat::parse("json"), ListFormat::Json);
        assert_eq!(
            ListFormat::parse("table {{.ID}}\\t{{.Name}}"),
            ListFormat::Template {
                text: "{{.ID}}\t{{.Name}}".into(),
                table: true
            }
        );
        assert_eq!(
            ListFormat::parse("{{.Name}}\\t{{.Driver}}"),
            ListFormat::Template {
                text: "{{.Name}}\t{{.Driver}}".into(),
                table: false
            }
        );
    }
}
