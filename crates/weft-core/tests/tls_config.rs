//! TLS without sockets: `ssl:`/`tls:` endpoint parsing, certificate loading and its errors,
//! SNI selection, reload; handshakes run in memory between rustls client and server.

mod support;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use support::pki::{self, Ca};
use weft_core::tls::{CertSource, ServerTls, ServerTlsOptions, TlsError, TlsVersion};
use weft_core::{ClientEndpoint, EndpointError, ServerEndpoint};

fn server(s: &str) -> ServerEndpoint {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn tls_of(ep: &ServerEndpoint) -> &ServerTlsOptions {
    match ep {
        ServerEndpoint::Tls { tls, .. } => tls,
        other => panic!("not TLS: {other:?}"),
    }
}

#[test]
fn ssl_endpoints_parse_with_twisteds_defaults() {
    let ep = server("ssl:8443:privateKey=key.pem:certKey=cert.pem");
    let ServerEndpoint::Tls { addr, backlog, tls } = &ep else {
        panic!()
    };
    assert_eq!(addr.to_string(), "0.0.0.0:8443");
    assert_eq!(*backlog, None);
    assert_eq!(
        tls.certs,
        CertSource::files("key.pem", Some("cert.pem".into()), None)
    );
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(
        ep.to_string(),
        "ssl:8443:privateKey=key.pem:certKey=cert.pem:interface=0.0.0.0"
    );

    // Twisted's positional order; privateKey defaults to server.pem; certKey to the key file.
    let ep = server("ssl:443");
    assert_eq!(
        tls_of(&ep).certs,
        CertSource::files("server.pem", None, None)
    );
    let ep = server("ssl:443:k.pem:c.pem:TLSv1_3_METHOD:127.0.0.1:50:chain.pem");
    let ServerEndpoint::Tls { addr, backlog, tls } = &ep else {
        panic!()
    };
    assert_eq!(addr.to_string(), "127.0.0.1:443");
    assert_eq!(*backlog, Some(50));
    assert_eq!(tls.min_version, Some(TlsVersion::Tls13));
    assert_eq!(
        tls.certs,
        CertSource::files("k.pem", Some("c.pem".into()), Some("chain.pem".into()))
    );
    // Every form prints back to an endpoint that parses to the same thing.
    assert_eq!(server(&ep.to_string()), ep);

    // IPv6 works (Twisted's ssl: is IPv4 only); Windows-style escaped paths too.
    let ep = server(
        r"ssl:443:privateKey=C\:/k.pem:interface=\:\:1:alpn=h2,http/1.1:handshakeTimeout=2.5:clientCA=ca.pem",
    );
    let ServerEndpoint::Tls { addr, tls, .. } = &ep else {
        panic!()
    };
    assert_eq!(addr.to_string(), "[::1]:443");
    assert_eq!(tls.certs, CertSource::files("C:/k.pem", None, None));
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(tls.handshake_timeout, Duration::from_millis(2500));
    assert_eq!(tls.client_ca.as_deref(), Some("ca.pem".as_ref()));
    assert_eq!(server(&ep.to_string()), ep);
}

#[test]
fn tls_endpoints_parse_a_directory_with_sni_defaults() {
    let ep = server("tls:/etc/pems");
    let ServerEndpoint::Tls { addr, tls, .. } = &ep else {
        panic!()
    };
    assert_eq!(addr.to_string(), "[::]:443");
    assert_eq!(tls.certs, CertSource::Directory("/etc/pems".into()));
    assert_eq!(server(&ep.to_string()), ep);
    let ep = server("tls:./pems:port=8443:interface=127.0.0.1:backlog=7:alpn=weft-line/1");
    let ServerEndpoint::Tls { addr, backlog, tls } = &ep else {
        panic!()
    };
    assert_eq!(addr.to_string(), "127.0.0.1:8443");
    assert_eq!(*backlog, Some(7));
    assert_eq!(tls.alpn, ["weft-line/1"]);
    assert_eq!(server(&ep.to_string()), ep);
}

#[test]
fn tls_arguments_weft_cannot_honour_are_refused_with_the_reason() {
    let err = "ssl:443:privateKey=k.pem:dhParameters=dh.pem"
        .parse::<ServerEndpoint>()
        .unwrap_err();
    assert!(matches!(err, EndpointError::Unsupported { ref key, .. } if key == "dhParameters"));
    assert!(
        err.to_string().contains("rustls has no finite-field DHE"),
        "{err}"
    );

    let err = "ssl:443:sslmethod=SSLv3_METHOD"
        .parse::<ServerEndpoint>()
        .unwrap_err();
    assert!(
        err.to_string().contains("TLSv1_2_METHOD or TLSv1_3_METHOD"),
        "{err}"
    );
    for bad in [
        "tls:",
        "tls:dir:port=x",
        "tls:dir:handshakeTimeout=0",
        "tls:dir:handshakeTimeout=-1",
        "tls:dir:alpn=h2,,x",
        "tls:dir:interface=nope",
        "ssl:443:nonsense=1",
    ] {
        assert!(bad.parse::<ServerEndpoint>().is_err(), "{bad} parsed");
    }
}

#[test]
fn tls_client_endpoints_parse_twisteds_grammar() {
    let ep: ClientEndpoint = "tls:example.com:443".parse().unwrap();
    let ClientEndpoint::Tls {
        host,
        port,
        timeout,
        tls,
        via,
    } = &ep
    else {
        panic!()
    };
    assert_eq!((host.as_str(), *port), ("example.com", 443));
    assert_eq!(*timeout, Duration::from_secs(30));
    assert!(tls.trust_roots.is_none() && via.is_none());

    let ep: ClientEndpoint = r"tls:awesome.example:443:timeout=5:trustRoots=ca.pem:certificate=me.pem:privateKey=me.key:endpoint=unix\:/run/awesome.sock"
        .parse()
        .unwrap();
    let ClientEndpoint::Tls { tls, via, .. } = &ep else {
        panic!()
    };
    assert_eq!(tls.trust_roots.as_deref(), Some("ca.pem".as_ref()));
    assert_eq!(tls.certificate.as_deref(), Some("me.pem".as_ref()));
    assert_eq!(tls.private_key.as_deref(), Some("me.key".as_ref()));
    assert!(
        matches!(via.as_deref(), Some(ClientEndpoint::Unix { path, .. }) if path.to_str() == Some("/run/awesome.sock"))
    );
    for bad in [
        "tls:example.com",
        "tls::443",
        "tls:h:443:privateKey=k.pem",
        r"tls:h:443:endpoint=tcp\:h",
        "tls:h:443:verify=no",
    ] {
        assert!(bad.parse::<ClientEndpoint>().is_err(), "{bad} parsed");
    }
}

// ----- loading -----

fn load(certs: CertSource) -> Result<ServerTls, TlsError> {
    ServerTls::load(&ServerTlsOptions::new(certs))
}

#[test]
fn every_load_error_names_the_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("Test CA");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    let (a_key, a_cert) = a.write_split(d, "a");
    let (b_key, _) = b.write_split(d, "b");

    // Missing.
    let missing = d.join("missing.pem");
    let err = load(CertSource::files(&missing, None, None)).unwrap_err();
    assert!(matches!(err, TlsError::Read { ref path, .. } if *path == missing));
    assert!(
        err.to_string().contains("missing.pem: cannot read"),
        "{err}"
    );

    // A key file without a certificate, used as both.
    let err = load(CertSource::files(&a_key, None, None)).unwrap_err();
    assert!(
        matches!(err, TlsError::NoCertificate { ref path } if *path == a_key),
        "{err}"
    );
    assert!(err.to_string().contains("no certificate in it"), "{err}");

    // A certificate given as the key.
    let err = load(CertSource::files(&a_cert, None, None)).unwrap_err();
    assert!(
        matches!(err, TlsError::NoPrivateKey { ref path } if *path == a_cert),
        "{err}"
    );

    // The wrong key for the certificate.
    let err = load(CertSource::files(&b_key, Some(a_cert.clone()), None)).unwrap_err();
    assert!(
        matches!(err, TlsError::KeyMismatch { ref key, ref cert } if *key == b_key && *cert == a_cert),
        "{err}"
    );
    assert!(
        err.to_string().contains("does not match the certificate"),
        "{err}"
    );

    // A chain file without certificates.
    let err = load(CertSource::files(
        &a_key,
        Some(a_cert.clone()),
        Some(b_key.clone()),
    ))
    .unwrap_err();
    assert!(
        matches!(err, TlsError::NoCertificate { ref path } if *path == b_key),
        "{err}"
    );

    // Not PEM at all (a truncated block).
    let broken = d.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = load(CertSource::files(&a_key, Some(broken.clone()), None)).unwrap_err();
    assert!(
        matches!(err, TlsError::Pem { ref path, .. } if *path == broken),
        "{err}"
    );

    // The right pair loads.
    let tls = load(CertSource::files(&a_key, Some(a_cert.clone()), None)).unwrap();
    assert!(tls.warnings().is_empty());
}

#[test]
fn an_expired_certificate_loads_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let old = ca.expired_leaf(&["old.test"]);
    let path = old.write_combined(dir.path(), "old");
    let tls = load(CertSource::files(&path, None, None)).unwrap();
    let w = tls.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("old.pem") && w[0].contains("expired"),
        "{w:?}"
    );
    assert!(w[0].contains("old.test"), "{w:?}");
}

#[test]
fn a_directory_without_a_usable_pair_says_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(CertSource::Directory(dir.path().into())).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificates { .. }), "{err}");
    let ca = Ca::new("Test CA");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    std::fs::write(dir.path().join("a-key.pem"), &a.key).unwrap();
    std::fs::write(dir.path().join("b-cert.pem"), &b.cert).unwrap();
    let err = load(CertSource::Directory(dir.path().into())).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a-key.pem: private key matches no certificate"),
        "{msg}"
    );
    let missing = dir.path().join("nope");
    let err = load(CertSource::Directory(missing.clone())).unwrap_err();
    assert!(
        matches!(err, TlsError::Read { ref path, .. } if *path == missing),
        "{err}"
    );
}

// ----- handshakes in memory -----

/// Runs a handshake between `client` and `server` in memory; the server's chosen chain and
/// ALPN on success.
fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> Result<ServerConnection, rustls::Error> {
    let mut s = ServerConnection::new(server)?;
    let mut c = ClientConnection::new(client, ServerName::try_from(name.to_owned()).unwrap())?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            s.read_tls(&mut &buf[..]).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            c.read_tls(&mut &buf[..]).unwrap();
            c.process_new_packets()?;
        }
        if !s.is_handshaking() && !c.is_handshaking() {
            return Ok(s);
        }
    }
    panic!("handshake did not finish");
}

fn client_trusting(ca: &Ca, sni: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let mut c =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    c.enable_sni = sni;
    Arc::new(c)
}

#[test]
fn a_directory_pairs_keys_by_public_key_builds_chains_and_picks_by_sni() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Ca::new("Root");
    let inter = Ca::intermediate("Intermediate", &root);
    // Keys and certificates in separate files, in an order that does not pair them by name;
    // the intermediate in its own file; a subdirectory.
    let exact = inter.leaf(&["www.example.test"]);
    let wild = inter.leaf(&["*.example.test"]);
    let other = root.leaf(&["other.test"]);
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("1-keys.pem"), format!("{}{}", wild.key, exact.key)).unwrap();
    std::fs::write(
        d.join("sub/2-certs.pem"),
        format!("{}{}", exact.cert, wild.cert),
    )
    .unwrap();
    std::fs::write(d.join("3-intermediate.pem"), inter.pem()).unwrap();
    other.write_combined(d, "4-other");
    std::fs::write(d.join("ignored.txt"), "not a pem").unwrap();

    let tls = load(CertSource::Directory(d.into())).unwrap();
    assert_eq!(
        tls.names(),
        ["*.example.test", "other.test", "www.example.test"]
    );
    let client = client_trusting(&root, true);
    let cfg = tls.config();
    // The chain up to the root was sent (the client trusts only the root).
    for name in [
        "www.example.test",
        "api.example.test",
        "other.test",
        "WWW.Example.Test",
    ] {
        let s =
            handshake(cfg.clone(), client.clone(), name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.server_name(), Some(name.to_ascii_lowercase().as_str()));
    }
    // An unknown name is refused (and never makes the server read the directory again).
    std::fs::remove_dir_all(d.join("sub")).unwrap();
    let err = handshake(cfg.clone(), client.clone(), "unknown.test").unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::General(_) | rustls::Error::AlertReceived(_)
        ),
        "{err:?}"
    );
    // Two labels under the wildcard do not match it.
    assert!(handshake(cfg.clone(), client.clone(), "a.b.example.test").is_err());
    // Without SNI: the first certificate in path order (4-other.pem comes before sub/).
    let no_sni = client_trusting(&root, false);
    assert!(handshake(cfg.clone(), no_sni.clone(), "other.test").is_ok());
    assert!(handshake(cfg.clone(), no_sni, "www.example.test").is_err());
}

#[test]
fn a_failed_reload_keeps_the_certificates_and_a_good_one_swaps_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("CA");
    ca.leaf(&["one.test"]).write_combined(d, "one");
    let tls = load(CertSource::Directory(d.into())).unwrap();
    let client = client_trusting(&ca, true);
    assert!(handshake(tls.config(), client.clone(), "one.test").is_ok());

    // A broken file: the reload fails, says why, and "one.test" is still served.
    std::fs::write(
        d.join("two.pem"),
        "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("two.pem"), "{err}");
    assert!(handshake(tls.config(), client.clone(), "one.test").is_ok());

    // Fixed: both names are served, by the same config object.
    ca.leaf(&["two.test"]).write_combined(d, "two");
    tls.reload().unwrap();
    assert!(handshake(tls.config(), client.clone(), "two.test").is_ok());
    assert!(handshake(tls.config(), client.clone(), "one.test").is_ok());
    assert_eq!(tls.names(), ["one.test", "two.test"]);
}

#[test]
fn ssl_serves_its_one_certificate_for_any_name_and_sets_alpn_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("CA");
    let path = ca.leaf(&["localhost"]).write_combined(dir.path(), "server");
    let opts = ServerTlsOptions::new(CertSource::files(&path, None, None))
        .alpn(["weft-line/1"])
        .min_version(TlsVersion::Tls13);
    let tls = ServerTls::load(&opts).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec(), b"weft-line/1".to_vec()];
    let s = handshake(tls.config(), Arc::new(c), "localhost").unwrap();
    assert_eq!(s.alpn_protocol(), Some(&b"weft-line/1"[..]));
    assert_eq!(s.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    // A TLS 1.2-only client is refused by a TLSv1_3_METHOD server.
    let c12 = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert!(handshake(tls.config(), Arc::new(c12), "localhost").is_err());
    // The certificate says localhost: a client asking for another name rejects it (the server
    // still offers it, as Twisted's ssl: does).
    let client = client_trusting(&ca, true);
    let err = handshake(tls.config(), client, "elsewhere.test").unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn self_signed_helper_works_for_one_file_key_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let path = pki::self_signed(&["localhost"]).write_combined(dir.path(), "localhost");
    assert!(load(CertSource::files(&path, None, None)).is_ok());
}

/// A client trusting `ca` that presents `leaf` as its certificate.
fn client_with_cert(ca: &Ca, leaf: &pki::Leaf) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let certs =
        vec![rustls::pki_types::CertificateDer::from_pem_slice(leaf.cert.as_bytes()).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap();
    Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap(),
    )
}

/// `reload` re-reads `clientCA=` too: client certificates of the new CA are accepted and the
/// old CA's refused from then on; a broken CA file fails the reload, names the file, and
/// keeps the CAs (and certificates) in use.
#[test]
fn a_reload_rereads_the_client_ca_file_and_a_broken_one_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = Ca::new("server CA");
    let key = server_ca.leaf(&["one.test"]).write_combined(d, "server");
    let (old_ca, new_ca) = (Ca::new("old client CA"), Ca::new("new client CA"));
    let ca_file = d.join("clients.pem");
    std::fs::write(&ca_file, old_ca.pem()).unwrap();
    let tls = ServerTls::load(
        &ServerTlsOptions::new(CertSource::files(key, None, None)).client_ca(&ca_file),
    )
    .unwrap();
    let old_client = client_with_cert(&server_ca, &old_ca.leaf(&["old client"]));
    let new_client = client_with_cert(&server_ca, &new_ca.leaf(&["new client"]));
    assert!(handshake(tls.config(), old_client.clone(), "one.test").is_ok());
    assert!(handshake(tls.config(), new_client.clone(), "one.test").is_err());

    std::fs::write(&ca_file, new_ca.pem()).unwrap();
    tls.reload().unwrap();
    assert!(handshake(tls.config(), new_client.clone(), "one.test").is_ok());
    assert!(handshake(tls.config(), old_client.clone(), "one.test").is_err());

    // Broken: the reload says which file and why; the new CA is still the one in use.
    std::fs::write(&ca_file, "not a certificate\n").unwrap();
    let err = tls.reload().unwrap_err();
    assert!(err.to_string().contains("clients.pem"), "{err}");
    assert!(handshake(tls.config(), new_client.clone(), "one.test").is_ok());
    assert!(handshake(tls.config(), old_client, "one.test").is_err());
    // Gone: the same.
    std::fs::remove_file(&ca_file).unwrap();
    let err = tls.reload().unwrap_err();
    assert!(
        matches!(err, TlsError::Read { ref path, .. } if *path == ca_file),
        "{err}"
    );
    assert!(handshake(tls.config(), new_client, "one.test").is_ok());
}
