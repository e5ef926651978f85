//! A key's lifecycle: create → alias → disable (Encrypt now fails with `Rejected.Disabled`) → enable →
//! schedule deletion → cancel, printing the state at each step.
//!
//! Run with `cargo run --example lifecycle`.

use kmskit::{
    AliasName, Caller, CreateKey, EncryptionContext, Error, KeyProvider, KeyRef, MemoryKms, MemoryKmsExt,
};

fn main() -> Result<(), Error> {
    kmskit::block_on(run())
}

async fn run() -> Result<(), Error> {
    let kms = MemoryKms::new_memory();
    let caller = Caller::local();
    let ctx = EncryptionContext::new();

    let key = kms.create_key(&caller, CreateKey::new("lifecycle demo")).await?;
    println!("created      {}: {}", key.key_id, key.key_state);

    let alias = AliasName::new("alias/lifecycle-demo")?;
    kms.create_alias(&caller, &alias, &KeyRef::Id(key.key_id.clone()))
        .await?;
    let by_alias = KeyRef::Alias(alias.clone());
    let state = |m: kmskit::KeyMetadata| m.key_state;
    println!(
        "aliased      {alias}: {}",
        state(kms.describe_key(&caller, &by_alias).await?)
    );

    kms.disable_key(&caller, &by_alias).await?;
    println!(
        "disabled     {}",
        state(kms.describe_key(&caller, &by_alias).await?)
    );
    match kms.encrypt(&caller, &by_alias, b"secret", &ctx).await {
        Err(e) => println!("  encrypt -> {} ({})", e.code(), e),
        Ok(_) => return Err(Error::Internal("a disabled key encrypted".into())),
    }

    kms.enable_key(&caller, &by_alias).await?;
    println!(
        "enabled      {}",
        state(kms.describe_key(&caller, &by_alias).await?)
    );

    kms.schedule_key_deletion(&caller, &by_alias, 7).await?;
    let m = kms.describe_key(&caller, &by_alias).await?;
    let when = m.delete_date.map(|d| d.to_string()).unwrap_or_default();
    println!("scheduled    {} (purged at {when})", m.key_state);

    kms.cancel_key_deletion(&caller, &by_alias).await?;
    println!(
        "cancelled    {}",
        state(kms.describe_key(&caller, &by_alias).await?)
    );
    Ok(())
}
