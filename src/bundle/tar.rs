//! The tar framing of `oci-archive:` bundles, read and written as a stream.
//!
//! Reading never extracts: [`scan`] walks the headers once (seeking over the data) and
//! records where each member's bytes are, so a blob is later read straight out of the
//! tar at its offset. Every member name is checked first: an absolute path, a `..`
//! component, a link or device, or a name given twice refuses the whole bundle, and a
//! member whose data runs past the end of the file is reported as truncated.
//!
//! Writing needs no buffering either: a member's size is known from its descriptor before
//! the first byte, so [`header`] is written, then the bytes as they stream, then
//! [`padding`]; [`END`] closes the archive.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use crate::error::{Error, Result};

/// Where one member's data sits in the tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Byte offset of the data.
    pub offset: u64,
    /// Data length.
    pub size: u64,
}

/// The two zero blocks that end a tar.
pub const END: [u8; 1024] = [0; 1024];

/// A ustar header for a regular file `path` of `size` bytes (mode 0644, mtime 0, so the
/// same content gives the same bytes).
pub fn header(path: &str, size: u64) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("OCI image layout paths fit a ustar header");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    *h.as_bytes()
}

/// Zero bytes after a member of `size` bytes, to the next 512-byte block.
pub fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// Scan a tar of `len` bytes: the data position of every regular file, by name (a
/// leading `./` removed). `what` names the bundle in errors.
pub fn scan<R: Read + Seek>(reader: R, len: u64, what: &str) -> Result<BTreeMap<String, Member>> {
    let refuse = |reason: String| Error::rejected(format!("bundle {what}"), reason);
    let mut archive = tar::Archive::new(reader);
    let mut members = BTreeMap::new();
    let entries = archive.entries_with_seek().map_err(|e| refuse(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| refuse(format!("not a tar archive, or truncated: {e}")))?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = check_name(&raw_path).map_err(|r| refuse(format!("member {raw_path:?}: {r}")))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(refuse(format!(
                    "member {raw_path:?} is a {other:?}, not a regular file (links are refused)"
                )));
            }
        }
        let member = Member { offset: entry.raw_file_position(), size: entry.size() };
        if member.offset.checked_add(member.size).is_none_or(|end| end > len) {
            return Err(refuse(format!(
                "member {raw_path:?} is truncated: the file ends before its {} bytes",
                member.size
            )));
        }
        if members.insert(name.clone(), member).is_some() {
            return Err(refuse(format!("member {name:?} appears twice")));
        }
    }
    Ok(members)
}

/// A member name as a clean relative path, or why not.
fn check_name(raw: &str) -> std::result::Result<String, &'static str> {
    if raw.starts_with('/') || raw.contains('\\') || raw.contains('\0') {
        return Err("absolute or non-portable path");
    }
    let trimmed = raw.trim_start_matches("./").trim_end_matches('/');
    if trimmed.split('/').any(|c| c == ".." || c == "." || c.is_empty()) && !trimmed.is_empty() {
        return Err("the path has '..', '.' or empty components");
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            out.extend_from_slice(&header(name, data.len() as u64));
            out.extend_from_slice(data);
            out.extend(std::iter::repeat_n(0, padding(data.len() as u64)));
        }
        out.extend_from_slice(&END);
        out
    }

    #[test]
    fn written_members_are_found_at_their_offsets() {
        let tar = archive(&[("oci-layout", b"{}"), ("blobs/sha256/ab", b"hello world")]);
        let members = scan(Cursor::new(&tar), tar.len() as u64, "t").unwrap();
        let m = members["blobs/sha256/ab"];
        assert_eq!(&tar[m.offset as usize..][..m.size as usize], b"hello world");
        assert_eq!(members.len(), 2);
        // GNU tar and Go's archive/tar read it too: the framing is plain ustar.
        let mut read = tar::Archive::new(Cursor::new(&tar));
        assert_eq!(read.entries().unwrap().count(), 2);
    }

    #[test]
    fn hostile_members_are_refused() {
        let mut link = tar::Header::new_ustar();
        link.set_path("blobs/sha256/x").unwrap();
        link.set_link_name("/etc/passwd").unwrap();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_cksum();
        let mut with_link = link.as_bytes().to_vec();
        with_link.extend_from_slice(&END);
        let err = scan(Cursor::new(&with_link), with_link.len() as u64, "t").unwrap_err().to_string();
        assert!(err.contains("Symlink") && err.contains("blobs/sha256/x"), "{err}");

        // tar::Header refuses to write `..` and absolute names, so patch the name field.
        for name in ["../../etc/x", "/etc/x", "blobs/../x"] {
            let mut tar = archive(&[("placeholder-name-of-some-length", b"x")]);
            tar[..100].fill(0);
            tar[..name.len()].copy_from_slice(name.as_bytes());
            let mut h = tar::Header::from_byte_slice(&tar[..512]).clone();
            h.set_cksum();
            tar[..512].copy_from_slice(h.as_bytes());
            let err = scan(Cursor::new(&tar), tar.len() as u64, "t").unwrap_err().to_string();
            assert!(err.contains(name), "{name}: {err}");
        }

        let twice = archive(&[("index.json", b"{}"), ("./index.json", b"{}")]);
        assert!(scan(Cursor::new(&twice), twice.len() as u64, "t").unwrap_err().to_string().contains("twice"));

        let full = archive(&[("blobs/sha256/ab", &[7; 2000])]);
        let cut = &full[..1200];
        let err = scan(Cursor::new(cut), cut.len() as u64, "t").unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
