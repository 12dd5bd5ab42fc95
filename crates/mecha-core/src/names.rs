//! daprd's check of the names apps give (`ValidateName`: actor types, ids
//! and methods, job names): none of `/ \ # ?` and no control character,
//! and neither `.` nor `..`.

/// What is wrong with a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    /// `.` or `..`.
    Dots,
    /// The first character that is not allowed.
    Forbidden(char),
}

/// What is wrong with `name`, if anything.
pub fn name_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if name == "." || name == ".." {
        return Some(NameProblem::Dots);
    }
    name.chars()
        .find(|c| matches!(c, '/' | '\\' | '#' | '?') || c.is_control())
        .map(NameProblem::Forbidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_daprd_checks_them() {
        assert_eq!(name_problem("cart-1"), None);
        assert_eq!(name_problem("a||b"), None);
        assert_eq!(name_problem(""), Some(NameProblem::Empty));
        assert_eq!(name_problem(".."), Some(NameProblem::Dots));
        assert_eq!(name_problem("a/b"), Some(NameProblem::Forbidden('/')));
        assert_eq!(name_problem("a\0"), Some(NameProblem::Forbidden('\0')));
    }
}
