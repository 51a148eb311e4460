//! SHA-1 through the runtime's Web Crypto (`crypto.subtle.digest`), which
//! runs natively in workerd instead of in our WebAssembly.

use worker::js_sys::{Function, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

use crate::error::AppError;
use crate::torrent::Id20;

fn js_error(what: &str, e: JsValue) -> AppError {
    AppError::Internal(format!("Web Crypto {what}: {e:?}"))
}

/// `crypto.subtle` of this isolate.
#[derive(Clone)]
pub struct Subtle {
    subtle: JsValue,
    digest: Function,
}

impl Subtle {
    pub fn get() -> Result<Subtle, AppError> {
        let crypto = Reflect::get(&worker::js_sys::global(), &"crypto".into()).map_err(|e| js_error("crypto", e))?;
        let subtle = Reflect::get(&crypto, &"subtle".into()).map_err(|e| js_error("crypto.subtle", e))?;
        let digest = Reflect::get(&subtle, &"digest".into())
            .map_err(|e| js_error("digest", e))?
            .dyn_into::<Function>()
            .map_err(|e| js_error("digest is not a function", e))?;
        Ok(Subtle { subtle, digest })
    }

    /// Starts the SHA-1 of `bytes` (copied into JavaScript memory); the
    /// returned promise resolves to the 20-byte digest.
    pub fn start_sha1(&self, bytes: &[u8]) -> Result<Promise, AppError> {
        let data = Uint8Array::from(bytes);
        self.digest
            .call2(&self.subtle, &"SHA-1".into(), &data)
            .map_err(|e| js_error("digest call", e))?
            .dyn_into::<Promise>()
            .map_err(|e| js_error("digest result", e))
    }
}

/// Waits for a digest started with [`Subtle::start_sha1`].
pub async fn finish_sha1(promise: Promise) -> Result<Id20, AppError> {
    let buffer = JsFuture::from(promise).await.map_err(|e| js_error("digest", e))?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    let digest: [u8; 20] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| AppError::Internal(format!("SHA-1 digest of {} bytes", b.len())))?;
    Ok(Id20(digest))
}
