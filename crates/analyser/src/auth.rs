//! HTTP basic auth for analysts.
//!
//! Users come from the configuration or a `users_file` (`name:$argon2id$…` lines);
//! passwords are argon2 PHC hashes, or plain text for development. Nothing is compiled
//! in. Checks take the same time whether the user exists or not (unknown users are
//! checked against a dummy hash), compare in constant time, and never say which half was
//! wrong. Successful checks are cached for a minute under a keyed hash of the header, so
//! argon2 does not cost every request; failed attempts are rate-limited per client.
//!
//! Each user has a [`Role`] (absent = admin); [`required_role`] says which role each
//! request needs, the one place the API's permissions are decided.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64ct::{Base64, Encoding};
use blake2::digest::{FixedOutput, KeyInit, Update};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use actix_web::http::Method;

use crate::configuration::{AuthSettings, Role};

const CACHE_FOR: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 10_000;
/// Failed attempts allowed per client address per window before 429.
pub const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
enum Credential {
    Plain(SecretString),
    Hash(SecretString),
}

/// Why a request is not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("too many failed logins; retry later")]
    TooManyFailures,
}

/// Who a request comes from, once its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

#[derive(Debug)]
pub struct Users {
    users: HashMap<String, (Credential, Role)>,
    dummy_hash: String,
    cache_key: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], (User, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Hashes a password for the configuration (`analyser hash-password`).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

impl Users {
    /// Reads the users of the configuration and of `users_file`.
    pub fn load(settings: &AuthSettings) -> anyhow::Result<Users> {
        let mut users = HashMap::new();
        for user in &settings.users {
            let credential = match (&user.password_hash, &user.password) {
                (Some(hash), None) => Credential::Hash(hash.clone()),
                (None, Some(plain)) => Credential::Plain(plain.clone()),
                _ => anyhow::bail!(
                    "user {:?}: give exactly one of password_hash and password",
                    user.name
                ),
            };
            users.insert(
                user.name.clone(),
                (credential, user.role.unwrap_or(Role::Admin)),
            );
        }
        if !settings.users_file.is_empty() {
            let text = std::fs::read_to_string(&settings.users_file)
                .map_err(|e| anyhow::anyhow!("auth.users_file {}: {e}", settings.users_file))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, rest)) = line.split_once(':') else {
                    anyhow::bail!(
                        "auth.users_file line {}: expected name:$argon2id$…[:role]",
                        n + 1
                    );
                };
                // A PHC string has no colon: one after it names the role.
                let (hash, role) = match rest.rsplit_once(':') {
                    None => (rest, Role::Admin),
                    Some((hash, role)) => (
                        hash,
                        Role::parse(role).ok_or_else(|| {
                            anyhow::anyhow!(
                                "auth.users_file line {}: role {role:?} is not viewer, analyst or admin",
                                n + 1
                            )
                        })?,
                    ),
                };
                let setting = format!("auth.users_file line {} (user {name:?})", n + 1);
                service::config::refuse_placeholder(&setting, hash).map_err(anyhow::Error::msg)?;
                users.insert(
                    name.to_owned(),
                    (Credential::Hash(SecretString::from(hash.to_owned())), role),
                );
            }
        }
        for (name, (credential, _)) in &users {
            if let Credential::Hash(hash) = credential {
                PasswordHash::new(hash.expose_secret()).map_err(|e| {
                    anyhow::anyhow!("user {name:?}: password_hash is not a PHC string ({e})")
                })?;
            }
        }
        let mut cache_key = [0u8; 32];
        getrandom(&mut cache_key);
        Ok(Users {
            users,
            dummy_hash: hash_password("not a real password").map_err(|e| anyhow::anyhow!("{e}"))?,
            cache_key,
            cache: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks an `Authorization` header value; returns the user.
    pub fn check(&self, header: Option<&str>, client: Option<IpAddr>) -> Result<User, AuthError> {
        if let Some(ip) = client {
            let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((count, since)) = failures.get(&ip) {
                if *count >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW {
                    return Err(AuthError::TooManyFailures);
                }
            }
        }
        let result = header
            .ok_or(AuthError::Unauthorized)
            .and_then(|h| self.check_header(h));
        if result.is_err() {
            if let Some(ip) = client {
                let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                if failures.len() > CACHE_MAX {
                    failures.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
                }
                let entry = failures.entry(ip).or_insert((0, Instant::now()));
                if entry.1.elapsed() >= FAILURE_WINDOW {
                    *entry = (0, Instant::now());
                }
                entry.0 += 1;
            }
        }
        result
    }

    fn check_header(&self, header: &str) -> Result<User, AuthError> {
        let key = self.cache_key(header);
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((user, at)) = cache.get(&key) {
                if at.elapsed() < CACHE_FOR {
                    return Ok(user.clone());
                }
            }
        }
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or(AuthError::Unauthorized)?;
        let decoded = Base64::decode_vec(encoded.trim()).map_err(|_| AuthError::Unauthorized)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Unauthorized)?;
        let (name, password) = decoded.split_once(':').ok_or(AuthError::Unauthorized)?;
        let entry = self.users.get(name);
        let ok = match entry.map(|(credential, _)| credential) {
            Some(Credential::Plain(expected)) => bool::from(
                expected
                    .expose_secret()
                    .as_bytes()
                    .ct_eq(password.as_bytes()),
            ),
            Some(Credential::Hash(hash)) => verify(hash.expose_secret(), password),
            None => {
                // Spend the same time as for a real user, then refuse.
                verify(&self.dummy_hash, password);
                false
            }
        };
        let Some((_, role)) = entry.filter(|_| ok) else {
            return Err(AuthError::Unauthorized);
        };
        let user = User {
            name: name.to_owned(),
            role: *role,
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, at)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(key, (user.clone(), Instant::now()));
        Ok(user)
    }

    fn cache_key(&self, header: &str) -> [u8; 32] {
        let mut mac =
            blake2::Blake2bMac::<blake2::digest::consts::U32>::new_from_slice(&self.cache_key)
                .unwrap_or_else(|_| {
                    unreachable!("a 32-byte key is within Blake2b's 64-byte limit")
                });
        mac.update(header.as_bytes());
        mac.finalize_fixed().into()
    }
}

/// The role a request needs: reading needs `viewer`; verdicts, silences and pulls need
/// `analyst`; changing datasets, and any other change, needs `admin`.
pub fn required_role(method: &Method, path: &str) -> Role {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Role::Viewer;
    }
    let path = path.trim_end_matches('/');
    let verdict = path
        .strip_prefix("/api/v1/anomalies/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_, action)| action == "approve" || action == "dismiss");
    if verdict
        || path == "/api/v1/pull"
        || path == "/api/v1/silences"
        || path.starts_with("/api/v1/silences/")
    {
        Role::Analyst
    } else {
        Role::Admin
    }
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn getrandom(buffer: &mut [u8]) {
    use argon2::password_hash::rand_core::RngCore;
    OsRng.fill_bytes(buffer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::UserSettings;

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            Base64::encode_string(format!("{user}:{password}").as_bytes())
        )
    }

    fn users() -> Users {
        let hash = hash_password("s3cret").unwrap();
        Users::load(&AuthSettings {
            users_file: String::new(),
            users: vec![
                UserSettings {
                    name: "plain".into(),
                    password_hash: None,
                    password: Some("dev".to_owned().into()),
                    role: None,
                },
                UserSettings {
                    name: "hashed".into(),
                    password_hash: Some(hash.into()),
                    password: None,
                    role: Some(Role::Viewer),
                },
            ],
        })
        .unwrap()
    }

    #[test]
    fn plain_and_hashed_passwords_are_accepted_and_wrong_ones_refused() {
        let users = users();
        let plain = User {
            name: "plain".into(),
            role: Role::Admin,
        };
        let hashed = User {
            name: "hashed".into(),
            role: Role::Viewer,
        };
        assert_eq!(users.check(Some(&header("plain", "dev")), None), Ok(plain));
        assert_eq!(
            users.check(Some(&header("hashed", "s3cret")), None),
            Ok(hashed.clone())
        );
        // Cached now: the same answer again.
        assert_eq!(
            users.check(Some(&header("hashed", "s3cret")), None),
            Ok(hashed)
        );
        for bad in [
            header("hashed", "wrong"),
            header("nobody", "dev"),
            "Bearer x".into(),
            "Basic !!!".into(),
        ] {
            assert_eq!(
                users.check(Some(&bad), None),
                Err(AuthError::Unauthorized),
                "{bad}"
            );
        }
        assert_eq!(users.check(None, None), Err(AuthError::Unauthorized));
    }

    #[test]
    fn failed_attempts_are_rate_limited_per_client() {
        let users = users();
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                users.check(Some(&header("plain", "guess")), Some(attacker)),
                Err(AuthError::Unauthorized)
            );
        }
        assert_eq!(
            users.check(Some(&header("plain", "dev")), Some(attacker)),
            Err(AuthError::TooManyFailures)
        );
        assert_eq!(
            users
                .check(Some(&header("plain", "dev")), Some(other))
                .map(|u| u.name),
            Ok("plain".into())
        );
    }

    #[test]
    fn a_user_needs_exactly_one_kind_of_password() {
        let settings = AuthSettings {
            users_file: String::new(),
            users: vec![UserSettings {
                name: "x".into(),
                password_hash: None,
                password: None,
                role: None,
            }],
        };
        assert!(Users::load(&settings).is_err());
    }

    #[test]
    fn reading_needs_a_viewer_verdicts_and_silences_an_analyst_datasets_an_admin() {
        for (method, path, role) in [
            (Method::GET, "/api/v1/state", Role::Viewer),
            (Method::GET, "/api/v1/silences", Role::Viewer),
            (Method::GET, "/api/v1/datasets", Role::Viewer),
            (Method::GET, "/", Role::Viewer),
            (Method::POST, "/api/v1/anomalies/7/approve", Role::Analyst),
            (Method::POST, "/api/v1/anomalies/7/dismiss", Role::Analyst),
            (Method::POST, "/api/v1/pull", Role::Analyst),
            (Method::POST, "/api/v1/silences", Role::Analyst),
            (Method::DELETE, "/api/v1/silences/3", Role::Analyst),
            (Method::POST, "/api/v1/datasets", Role::Admin),
            (Method::PUT, "/api/v1/datasets/shop", Role::Admin),
            (Method::DELETE, "/api/v1/datasets/shop", Role::Admin),
            (Method::POST, "/api/v1/anomalies/7/delete", Role::Admin),
            (Method::POST, "/api/v1/something-new", Role::Admin),
        ] {
            assert_eq!(required_role(&method, path), role, "{method} {path}");
        }
    }

    #[test]
    fn a_users_file_line_may_name_a_role() {
        let dir = std::env::temp_dir().join(format!("analyser-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("users");
        let hash = hash_password("pw").unwrap();
        std::fs::write(&file, format!("ann:{hash}\nvic:{hash}:viewer\n")).unwrap();
        let settings = AuthSettings {
            users_file: file.to_string_lossy().into_owned(),
            users: Vec::new(),
        };
        let users = Users::load(&settings).unwrap();
        let role = |name: &str| users.check(Some(&header(name, "pw")), None).map(|u| u.role);
        assert_eq!(role("ann"), Ok(Role::Admin));
        assert_eq!(role("vic"), Ok(Role::Viewer));
        std::fs::write(&file, format!("eve:{hash}:root\n")).unwrap();
        let error = Users::load(&settings).unwrap_err().to_string();
        assert!(
            error.contains("\"root\" is not viewer, analyst or admin"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
