//! Column output as Docker prints it (Go's tabwriter with minwidth 10, padding 3).

/// Renders rows under a header; every column but the last is padded to its widest cell + 3,
/// at least 10 characters.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(header.iter().map(|s| s.to_string()).collect::<Vec<_>>()).chain(rows.iter().cloned());
    for r in all {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                let w = (widths[i] + 3).max(10);
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_like_docker() {
        let s = render(
            &["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
            &[vec![
                "7fca4eb8c647".into(),
                "bridge".into(),
                "bridge".into(),
                "local".into(),
            ]],
        );
        assert_eq!(
            s,
            "NETWORK ID     NAME      DRIVER    SCOPE\n7fca4eb8c647   bridge    bridge    local\n"
        );
    }
}
