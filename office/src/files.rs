//! Files that hold personal data or codes (manifests, SMS files): created
//! mode 0600, never written through a symlink, synced before they count.
//!
//! * [`replace_private`] writes a whole file: a new temporary file beside it
//!   (0600), synced, then renamed over the path, so a reader never sees half
//!   a file. A path that exists and is not a regular file (a device such as
//!   `/dev/null`, a symlink such as `/dev/stdout`, a directory) is refused:
//!   the rename would replace it, and as root that breaks the system.
//! * [`create_private`] writes a new file (keys) and never replaces one.
//! * [`append_private`] appends (an SMS file is never overwritten: its rows
//!   may not have been sent yet). It opens with `O_NOFOLLOW` and refuses a
//!   file that others can read or that is not a regular file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::error::{io, Error, Result};

/// Make `dir` (and its parents), the last component mode 0700.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Create `path` with mode 0600 and write `bytes`; refuse to overwrite.
pub fn create_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(())
}

/// Write `bytes` as the whole of `path`, mode 0600, atomically. Refuses a
/// path that exists and is not a regular file.
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(Error::UnsafeFile {
                path: path.to_owned(),
                why: if meta.file_type().is_symlink() {
                    "it is a symbolic link; name the file itself"
                } else {
                    "it exists and is not a regular file"
                },
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".handover-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    // tempfile creates its files 0600 on Unix.
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

/// Check, before any work, that [`append_private`] will take `path`: absent,
/// or a regular private file (not a symlink, not readable by others).
pub fn check_appendable(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(path)(e)),
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::UnsafeFile {
            path: path.to_owned(),
            why: "it is a symbolic link",
        }),
        Ok(meta) => private_regular(path, &meta),
    }
}

/// Refuse what is not a regular file, or what group or others may read or
/// write.
fn private_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let unsafe_file = |why| Error::UnsafeFile {
        path: path.to_owned(),
        why,
    };
    if !meta.is_file() {
        return Err(unsafe_file("it is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(unsafe_file("others may read it (make it mode 0600)"));
        }
    }
    Ok(())
}

/// Append `bytes` to `path`, creating it 0600 if absent. Returns whether the
/// file existed before. Refuses a symlink, a non-regular file, or a file
/// readable or writable by group or others (checked on the opened file, so
/// nothing can be swapped in between).
pub fn append_private(path: &Path, bytes: &[u8]) -> Result<bool> {
    let unsafe_file = |why| Error::UnsafeFile {
        path: path.to_owned(),
        why,
    };
    let mut create = OpenOptions::new();
    create.append(true).create_new(true);
    let mut existing = OpenOptions::new();
    existing.append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        create.mode(0o600);
        existing.custom_flags(libc::O_NOFOLLOW);
    }
    let (mut f, existed) = match create.open(path) {
        Ok(f) => (f, false),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let f = existing.open(path).map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    unsafe_file("it is a symbolic link")
                } else {
                    io(path)(e)
                }
            })?;
            (f, true)
        }
        Err(e) => return Err(io(path)(e)),
    };
    private_regular(path, &f.metadata().map_err(io(path))?)?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replace_is_private_and_refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::write(&out, "old").unwrap();
        fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
        replace_private(&out, b"manifest").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"manifest");
        let mode = fs::symlink_metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A symlink (as /dev/stdout is) is neither followed nor replaced.
        let victim = d.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(matches!(
            replace_private(&link, b"manifest"),
            Err(Error::UnsafeFile { .. })
        ));
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        // A FIFO stands in for a device file such as /dev/null: no test
        // touches a system path.
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(
            replace_private(&fifo, b"manifest"),
            Err(Error::UnsafeFile { .. })
        ));
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // A directory.
        assert!(matches!(
            replace_private(d.path(), b"manifest"),
            Err(Error::UnsafeFile { .. })
        ));
    }

    #[test]
    fn append_refuses_symlinks_and_open_files_and_keeps_rows() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sms.csv");
        assert!(!append_private(&p, b"a\n").unwrap());
        assert!(append_private(&p, b"b\n").unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nb\n");
        let link = d.path().join("link.csv");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(matches!(
            append_private(&link, b"c\n"),
            Err(Error::UnsafeFile { .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            append_private(&p, b"c\n"),
            Err(Error::UnsafeFile { .. })
        ));
        assert_eq!(fs::read_to_string(&p).unwrap(), "a\nb\n");
    }
}
