//! A throw-away SoftHSM2 for the PKCS#11 tests and benches: its own configuration and token
//! directory in a temporary directory (SOFTHSM2_CONF), tokens made with `softhsm2-util`, keys
//! imported through the module itself (cryptoki), non-extractable.
//!
//! Two ways to hold one. [`hsm`] is the SoftHSM of a test process that loads the module itself:
//! SoftHSM reads SOFTHSM2_CONF when the module is initialised, once per process, so every token
//! such a binary needs is made there, before the first use of the module. [`Hsm::new`] is one
//! per test, for tests that drive the command: [`Hsm::command`] puts its configuration in the
//! environment of the child process only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

pub const PIN: &str = "271828";
pub const SO_PIN: &str = "314159";

/// A SoftHSM2 configuration with its own token directory and one token per label (user PIN
/// [`PIN`], also in the file `DIR/pin`). Its directory is removed on drop.
pub struct Hsm {
    pub module: PathBuf,
    pub dir: PathBuf,
}

/// Where Debian and others put SoftHSM2's module.
fn find_module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// The SoftHSM of this test process, with `tokens` initialised, and SOFTHSM2_CONF set for the
/// process (and so for every command it starts); `None` (the test skips, saying so) when
/// SoftHSM2 is not installed, except under CI=true, where that is a failure.
pub fn hsm(tokens: &[&str]) -> Option<&'static Hsm> {
    static HSM: OnceLock<Option<Hsm>> = OnceLock::new();
    HSM.get_or_init(|| {
        // A static is never dropped: remove the directories of processes that have ended.
        remove_stale_dirs();
        let hsm = Hsm::new(tokens)?;
        // SAFETY: set once, before this process loads the module (which reads it in C_Initialize),
        // from the single thread that runs this initialiser while the others wait on the OnceLock.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        Some(hsm)
    })
    .as_ref()
}

/// The directory of a test process lives as long as the process (a static cannot clean up):
/// remove those of processes that have ended.
fn remove_stale_dirs() {
    // Liveness is read from /proc: elsewhere, leave everything.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("msgraph-notify-softhsm-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Held while a test creates token objects (imports, or `Pkcs11Key::generate`): SoftHSM2's file
/// object store answered CKR_GENERAL_ERROR to a CreateObject racing another test's on the same
/// token, under load (twice seen, once in an import and once in a generate). The tests of one
/// binary share one token directory; they create objects one at a time.
pub fn creating() -> std::sync::MutexGuard<'static, ()> {
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    CREATING.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hsm {
    /// A SoftHSM of its own with `tokens` initialised; `None` (the test skips, saying so) when
    /// SoftHSM2 is not installed, except under CI=true, where that is a failure.
    pub fn new(tokens: &[&str]) -> Option<Hsm> {
        let Some(module) = find_module() else {
            return crate::missing(
                "SoftHSM2 is not installed",
                "apt-get install softhsm2 opensc",
            );
        };
        let dir = std::env::temp_dir().join(format!(
            "msgraph-notify-softhsm-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let hsm = Hsm { module, dir };
        std::fs::write(
            hsm.conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                hsm.dir.join("tokens").display()
            ),
        )
        .unwrap();
        for label in tokens {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", hsm.conf())
                .args(["--init-token", "--free", "--label", label])
                .args(["--so-pin", SO_PIN, "--pin", PIN])
                .output()
                .expect("softhsm2-util runs");
            assert!(
                out.status.success(),
                "softhsm2-util --init-token {label}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::write(hsm.dir.join("pin"), format!("{PIN}\n")).unwrap();
        Some(hsm)
    }

    /// Its configuration file (what SOFTHSM2_CONF names).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// A command with this HSM's configuration and module in its environment
    /// (`MSGRAPH_NOTIFY_PKCS11_MODULE`), and no PIN from the environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("SOFTHSM2_CONF", self.conf())
            .env("MSGRAPH_NOTIFY_PKCS11_MODULE", &self.module)
            .env_remove("MSGRAPH_NOTIFY_PKCS11_PIN");
        c
    }

    /// A URI with the PIN in a file (`pin-source=file:`) and without module-path (the module
    /// comes from MSGRAPH_NOTIFY_PKCS11_MODULE, as [`Hsm::command`] sets it).
    pub fn uri_without_module(&self, token: &str, object: &str) -> String {
        format!(
            "pkcs11:token={token};object={object}?pin-source=file:{}",
            self.dir.join("pin").display()
        )
    }

    /// A URI with the PIN in a file (`pin-source=file:`).
    pub fn uri(&self, token: &str, object: &str) -> String {
        format!(
            "pkcs11:token={token};object={object}?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.dir.join("pin").display()
        )
    }

    /// The test's own handle on the module (the same library the crate loads): for importing
    /// keys and inspecting objects. Initialised, or already initialised by the crate.
    pub fn ctx(&self) -> Pkcs11 {
        let ctx = Pkcs11::new(&self.module).unwrap();
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("C_Initialize: {e}"),
        }
        ctx
    }

    /// A read-write session on `token`, logged in as the user.
    pub fn session(&self, ctx: &Pkcs11, token: &str) -> Session {
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label() == token)
            .unwrap_or_else(|| panic!("no token {token}"));
        let session = ctx.open_rw_session(slot).unwrap();
        match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => panic!("login: {e}"),
        }
        session
    }

    /// Imports an RSA private key (PKCS#1 DER) into `token` as sensitive and non-extractable,
    /// and its certificate (DER), if given, under the same id.
    pub fn import(
        &self,
        token: &str,
        label: &str,
        id: &[u8],
        pkcs1_der: &[u8],
        cert: Option<&[u8]>,
    ) {
        let _one = creating();
        let rsa = pkcs1::RsaPrivateKeyRef::try_from(pkcs1_der).unwrap();
        let ctx = self.ctx();
        let session = self.session(&ctx, token);
        let uint = |u: pkcs1::UintRef<'_>| u.as_bytes().to_vec();
        session
            .create_object(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Decrypt(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
                Attribute::Modulus(uint(rsa.modulus)),
                Attribute::PublicExponent(uint(rsa.public_exponent)),
                Attribute::PrivateExponent(uint(rsa.private_exponent)),
                Attribute::Prime1(uint(rsa.prime1)),
                Attribute::Prime2(uint(rsa.prime2)),
                Attribute::Exponent1(uint(rsa.exponent1)),
                Attribute::Exponent2(uint(rsa.exponent2)),
                Attribute::Coefficient(uint(rsa.coefficient)),
            ])
            .unwrap();
        if let Some(der) = cert {
            use x509_parser::prelude::FromDer;
            let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
            session
                .create_object(&[
                    Attribute::Class(ObjectClass::CERTIFICATE),
                    Attribute::CertificateType(CertificateType::X_509),
                    Attribute::Token(true),
                    Attribute::Label(label.as_bytes().to_vec()),
                    Attribute::Id(id.to_vec()),
                    Attribute::Subject(parsed.subject().as_raw().to_vec()),
                    Attribute::Value(der.to_vec()),
                ])
                .unwrap();
        }
    }

    /// The boolean attributes of the private key labelled `label` on `token`.
    pub fn private_key_flags(&self, token: &str, label: &str) -> Vec<Attribute> {
        let ctx = self.ctx();
        let session = self.session(&ctx, token);
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "one private key {label}");
        session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::PrivateExponent,
                ],
            )
            .unwrap()
    }
}

impl Drop for Hsm {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
