//! The one name rule for every object (tenants, networks, ports, hosts,
//! labs, nodes, images, snapshots, experiments): names become path
//! components, libvirt domain names, OvS external ids and command
//! arguments, so they are plain.

/// Longest name of any object, in bytes.
pub const MAX_NAME: usize = 64;

/// 1 to 64 ASCII letters, digits, '-', '_' and '.', starting with a letter
/// or digit (so a name never hides as a dot file nor reads as an option).
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "{what} name is {} bytes long; the limit is {MAX_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{what} name {name:?} has the character {c:?}; use letters, digits, '-', '_' and '.'"
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{what} name {name:?} must start with a letter or a digit"
        ));
    }
    Ok(())
}

/// A name that other names are joined from with '.' (labs and nodes make
/// port names `<lab>.<node>.<n>` and domains `dclab.<lab>.<node>`): the
/// rule above, without '.', and at most `max` bytes.
pub fn check_short_name(what: &str, name: &str, max: usize) -> Result<(), String> {
    check_name(what, name)?;
    if name.contains('.') {
        return Err(format!(
            "{what} name {name:?} contains '.'; use letters, digits, '-' and '_'"
        ));
    }
    if name.len() > max {
        return Err(format!(
            "{what} name {name:?} is {} bytes long; the limit is {max}",
            name.len()
        ));
    }
    Ok(())
}
