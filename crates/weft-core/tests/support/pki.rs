//! Test certificates made with rcgen: a CA, leaves signed by it (directly or through an
//! intermediate), expired ones; written as PEM files into a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM text.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Leaf {
    /// Writes `cert` and `key` into `dir/name.pem` (one file) and returns the path.
    pub fn write_combined(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, format!("{}{}", self.key, self.cert)).unwrap();
        p
    }
    /// Writes `name.key.pem` and `name.crt.pem`; returns (key, cert).
    pub fn write_split(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let k = dir.join(format!("{name}.key.pem"));
        let c = dir.join(format!("{name}.crt.pem"));
        std::fs::write(&k, &self.key).unwrap();
        std::fs::write(&c, &self.cert).unwrap();
        (k, c)
    }
}

/// A certificate authority.
pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        Self::signed(name, None)
    }

    /// An intermediate CA signed by `parent`.
    pub fn intermediate(name: &str, parent: &Ca) -> Ca {
        Self::signed(name, Some(parent))
    }

    fn signed(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let issuer = match parent {
            None => CertifiedIssuer::self_signed(params, key).unwrap(),
            Some(p) => CertifiedIssuer::signed_by(params, key, &p.issuer).unwrap(),
        };
        Ca { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `names` signed by this CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, false)
    }

    /// A leaf that expired in 2001.
    pub fn expired_leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(names, true)
    }

    fn leaf_with(&self, names: &[&str], expired: bool) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// A self-signed leaf (its own CA).
pub fn self_signed(names: &[&str]) -> Leaf {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Leaf {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
    }
}
