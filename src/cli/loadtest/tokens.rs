//! The bearer tokens resource requests carry: a fixed one, ones minted from a realm's
//! signing key (one, a cache hit after the first request, or a pool of distinct ones), or
//! one fetched from a token endpoint and refreshed before it expires; and the invalid
//! variants of a mix.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderValue;

use portcullis::issuer::{MintRequest, mint};

use super::grant::{self, FetchParams};
use super::{Fail, Params};

/// Valid tokens and the invalid variants of the mix.
pub(super) struct Tokens {
    valid: TokenSupply,
    /// Bad signature, expired, wrong audience (those the source can make).
    invalid: Vec<HeaderValue>,
}

enum TokenSupply {
    None,
    /// The same token every time (also a fetched one, swapped when refreshed).
    One(Arc<ArcSwap<HeaderValue>>),
    /// A pool of distinct tokens, sent in turn.
    Pool(Vec<HeaderValue>),
}

/// `Bearer <token>` as a header value.
pub(super) fn bearer(token: &str) -> Result<HeaderValue, Fail> {
    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| (1, "the token is not a header value".into()))
}

/// `token` with its signature's last character changed: a bad signature.
pub(super) fn tampered(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap_or('A');
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

/// Which of `n` invalid variants request `i` carries, if any: the first `share` of each
/// hundred requests are invalid, taking the variants in turn.
pub(super) fn invalid_variant(i: u64, share: f64, n: usize) -> Option<usize> {
    let hundredth = (i % 100) as f64;
    if n == 0 || hundredth >= share * 100.0 {
        return None;
    }
    let turn = usize::try_from(i / 100 + i % 100).unwrap_or(0);
    Some(turn % n)
}

impl Tokens {
    /// The tokens `p` asks for.
    pub(super) async fn new(p: &Params) -> Result<Self, Fail> {
        if let Some(t) = &p.token {
            return Ok(Self {
                valid: TokenSupply::One(Arc::new(ArcSwap::from_pointee(bearer(t)?))),
                invalid: vec![bearer(&tampered(t))?],
            });
        }
        if let (Some(config), Some(rs)) = (&p.config, &p.resource_server) {
            return Self::minted(config, rs, p);
        }
        if let Some(url) = &p.token_url {
            return Self::fetched(url, FetchParams::of(p)).await;
        }
        Ok(Self {
            valid: TokenSupply::None,
            invalid: Vec::new(),
        })
    }

    /// A token fetched from `url`, refreshed at 80 % of its lifetime.
    async fn fetched(url: &str, params: FetchParams) -> Result<Self, Fail> {
        let (token, ttl) = grant::fetch(url, &params).await?;
        let invalid = vec![bearer(&tampered(&token))?];
        let one = Arc::new(ArcSwap::from_pointee(bearer(&token)?));
        if let Some(ttl) = ttl {
            let url = url.to_owned();
            let slot = one.clone();
            tokio::spawn(async move {
                let mut ttl = ttl;
                loop {
                    tokio::time::sleep(ttl.mul_f64(0.8).max(Duration::from_secs(1))).await;
                    if let Ok((t, next)) = grant::fetch(&url, &params).await
                        && let Ok(v) = bearer(&t)
                    {
                        slot.store(Arc::new(v));
                        ttl = next.unwrap_or(ttl);
                    }
                }
            });
        }
        Ok(Self {
            valid: TokenSupply::One(one),
            invalid,
        })
    }

    /// Tokens minted from the realm's signing key (`--alg`'s, else the resource server's
    /// `signing_alg`'s, else the first) for resource server `rs`: one, or a pool of
    /// `--unique` distinct ones minted on every core; the invalid variants are a bad
    /// signature, an expired token and one for another audience.
    fn minted(config: &std::path::Path, rs: &str, p: &Params) -> Result<Self, Fail> {
        let usage = |m: String| (super::super::EXIT_CONFIG, m);
        let clock = portcullis::time::system();
        let snap = portcullis::app::load_snapshot(config, clock.clone(), None)
            .map_err(|e| usage(format!("invalid configuration:\n{e}")))?;
        let (_, server) = snap
            .resource_server(rs)
            .ok_or_else(|| usage(format!("no resource server has id {rs:?}")))?;
        let realm = &snap.realms[server.realm];
        let alg = match &p.alg {
            Some(name) => Some(
                portcullis::jwks::parse_alg(name).ok_or_else(|| usage(format!("{name:?} is not a JWS algorithm")))?,
            ),
            None => server.signing_alg,
        };
        let key = match alg {
            Some(alg) => realm.signing.active(alg),
            None => realm.signing.first(),
        }
        .ok_or_else(|| (1, format!("realm {:?} has no such signing key", realm.name.as_str())))?;
        let scope = p
            .scope
            .clone()
            .unwrap_or_else(|| server.default_scopes.to_space_separated());
        let now = clock.now();
        let mint_at = |audience: &str, now: i64, n: usize| -> Result<HeaderValue, Fail> {
            let subject = format!("loadtest-{n}");
            let token = mint(
                &MintRequest {
                    issuer: &realm.issuer,
                    audience,
                    subject: &subject,
                    client_id: "portcullis-loadtest",
                    scope: &scope,
                    now,
                    ttl: server.access_token_ttl,
                    auth_time: now,
                },
                key,
            )
            .map_err(|e| (1, e.to_string()))?;
            bearer(&token)
        };
        let audience = server.audience.as_str();
        let first = mint_at(audience, now, 0)?;
        let valid = match p.unique {
            Some(n) if n > 1 => TokenSupply::Pool(pool(n, |i| mint_at(audience, now, i))?),
            _ => TokenSupply::One(Arc::new(ArcSwap::from_pointee(first.clone()))),
        };
        let ttl = i64::try_from(server.access_token_ttl.as_secs()).unwrap_or(3600);
        let first_text = first.to_str().unwrap_or_default().trim_start_matches("Bearer ");
        let invalid = vec![
            bearer(&tampered(first_text))?,
            mint_at(audience, now - 2 * ttl - 3600, 0)?,
            mint_at("https://not-this-audience.invalid", now, 0)?,
        ];
        Ok(Self { valid, invalid })
    }

    /// The `Authorization` of request number `i`, invalid for the first `share` of each
    /// hundred.
    pub(super) fn for_request(&self, i: u64, share: f64) -> Option<HeaderValue> {
        if let Some(v) = invalid_variant(i, share, self.invalid.len()) {
            return self.invalid.get(v).cloned();
        }
        match &self.valid {
            TokenSupply::None => None,
            TokenSupply::One(t) => Some(HeaderValue::clone(&t.load())),
            TokenSupply::Pool(pool) => pool.get(usize::try_from(i).unwrap_or(0) % pool.len().max(1)).cloned(),
        }
    }

    /// How many distinct valid tokens are sent in turn (`None`: one, or none).
    pub(super) fn distinct(&self) -> Option<usize> {
        match &self.valid {
            TokenSupply::Pool(p) => Some(p.len()),
            _ => None,
        }
    }
}

/// `n` values of `make(i)`, made on every core (minting an RSA token costs ~0.3 ms).
pub(super) fn pool<T, F>(n: usize, make: F) -> Result<Vec<T>, Fail>
where
    T: Send,
    F: Fn(usize) -> Result<T, Fail> + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |c| c.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let make = &make;
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .map(make)
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(h.join().map_err(|_| (1, "a minting thread failed".to_owned()))??);
        }
        Ok(all)
    })
}
