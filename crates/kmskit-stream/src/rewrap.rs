//! Header-only rewrap: move a stream to the key's current primary version, or to another key, without
//! touching its chunks.

use std::io::{Read, Seek, SeekFrom, Write};

use kmskit_core::blob::ParsedBlob;
use kmskit_core::{Caller, EncryptionContext, KeyProvider, KeyRef};

use crate::error::{Result, StreamError};
use crate::format::Header;
use crate::keys::Opener;
use crate::options::Options;

impl Opener {
    /// This stream's header with `new_wrapped_key` (the same data key, wrapped anew) in place of the old
    /// one, re-MACed. The body stays valid unchanged. If the new key fits the header's slot (the usual
    /// case: the writer leaves headroom) the header keeps its length.
    ///
    /// # Errors
    /// [`StreamError::InvalidArgument`] for a wrapped key outside 1–8192 bytes.
    pub fn rewrapped_header(&self, new_wrapped_key: &[u8]) -> Result<Header> {
        self.session.rewrapped_header(new_wrapped_key)
    }
}

/// Re-wraps the data key of the stream whose header is `header`: unwraps it through `provider` (which
/// also authenticates the header), re-encrypts the wrapped key with ReEncrypt to `dest` (default: the
/// key that wrapped it, i.e. its current primary version) and returns the new header.
///
/// # Errors
/// [`StreamError::Kms`] for provider failures, header authentication errors, and
/// [`StreamError::InvalidArgument`] when `dest` is `None` and the wrapped key is not a kmskit blob
/// naming its key.
pub async fn rewrap_header<P: KeyProvider + ?Sized>(
    header: Header,
    provider: &P,
    caller: &Caller,
    ctx: &EncryptionContext,
    dest: Option<&KeyRef>,
) -> Result<Header> {
    let blob = header.wrapped_blob();
    let dest = match dest {
        Some(k) => k.clone(),
        None => {
            let parsed = ParsedBlob::parse(blob.as_bytes()).map_err(|_| {
                StreamError::InvalidArgument(
                    "the wrapped key does not name its key; give a destination key".into(),
                )
            })?;
            KeyRef::Id(parsed.key_id)
        }
    };
    let opener = Opener::unwrap(header, provider, caller, ctx, &Options::default().workers(1)).await?;
    let re = provider.re_encrypt(caller, &blob, ctx, &dest, ctx).await?;
    opener.rewrapped_header(re.ciphertext_blob.as_bytes())
}

/// Rewraps the stream stored in `file` in place: reads its header, computes the new one with
/// [`rewrap_header`] and overwrites the header bytes only — O(header), not O(file). Returns the new
/// header.
///
/// The header is rewritten with one write at offset 0; a crash during that write can leave a torn
/// header, so keep a copy of the old header (or of the file) when that matters.
///
/// # Errors
/// As [`rewrap_header`]; [`StreamError::LimitExceeded`] when the new wrapped key does not fit the
/// header's slot (write the new header and copy the body to a new file instead); I/O errors.
pub async fn rewrap_in_place<F: Read + Write + Seek, P: KeyProvider + ?Sized>(
    file: &mut F,
    provider: &P,
    caller: &Caller,
    ctx: &EncryptionContext,
    dest: Option<&KeyRef>,
) -> Result<Header> {
    file.seek(SeekFrom::Start(0))?;
    let old = Header::read_from(file)?;
    let old_len = old.len();
    let new = rewrap_header(old, provider, caller, ctx, dest).await?;
    if new.len() != old_len {
        return Err(StreamError::LimitExceeded(
            "the new wrapped key does not fit the header's slot",
        ));
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&new.to_bytes())?;
    file.flush()?;
    Ok(new)
}
