//! Secrets for the config: the `Secret` type (re-exported from the contract
//! crate, so the daemon hands credentials to connectors without converting;
//! its `Debug` and `Display` print `***`, it has no `Serialize`, and only
//! `expose()` gives the value), and reading a secret file, which refuses
//! files that group or others may read.

use std::io::Read;
use std::path::Path;

pub use switchyard_contract::Secret;

/// Reads a `NAME_file` secret. The message of an error names the file, never
/// its content.
pub(crate) fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| {
        format!(
            "cannot open secret file {shown}: {}",
            crate::io_text::reason(&e)
        )
    })?;
    // Permissions of the opened file, not of the path, so a swap between the
    // check and the read cannot slip a different file in.
    let metadata = file.metadata().map_err(|e| {
        format!(
            "cannot read secret file {shown}: {}",
            crate::io_text::reason(&e)
        )
    })?;
    if !metadata.is_file() {
        return Err(format!("secret file {shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "secret file {shown} is readable by group or others (mode {mode:04o}); run: chmod 600 {shown}"
            ));
        }
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| {
        format!(
            "cannot read secret file {shown}: {}",
            crate::io_text::reason(&e)
        )
    })?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("secret file {shown} is not UTF-8 text"))?;
    // Editors and `echo` add a final newline that is not part of the secret.
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("secret file {shown} is empty"));
    }
    Ok(Secret::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn secret_files_are_private_and_lose_one_final_newline() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let error = read_secret_file(&path).unwrap_err();
        assert!(error.contains("(mode 0640); run: chmod 600 "), "{error}");
        assert!(!error.contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_secret_file(&path).unwrap().expose(), "s3cret\n");
        let missing = read_secret_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.ends_with("no such file or directory"), "{missing}");
    }
}
