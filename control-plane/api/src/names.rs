//! The names of networks, sandboxes and aliases: 1-64 characters from [a-zA-Z0-9_.-],
//! starting with a letter or digit, as Docker's.

/// Whether `name` is a valid name.
pub fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// What a valid name is, for error messages.
pub const RULE: &str = "use 1-64 characters from [a-zA-Z0-9_.-], starting with a letter or digit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_s_rule() {
        for ok in ["a", "my_net2", "web.1", "x-y", &"a".repeat(64)] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", &"a".repeat(65)] {
            assert!(!valid(bad), "{bad}");
        }
    }
}
