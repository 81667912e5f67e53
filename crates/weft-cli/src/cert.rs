//! `weft cert self-signed --name localhost --out DIR`: a certificate to try TLS with, in one
//! command (as `mkcert` users expect).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::exit::{self, Failure};

/// Arguments of `weft cert`.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// What to make.
    #[command(subcommand)]
    pub command: CertCommand,
}

/// The `weft cert` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Make a self-signed certificate and its key: DIR/NAME.pem (key and certificate, what
    /// `ssl:` and `tls:` endpoints read) and DIR/NAME.crt (the certificate alone, for
    /// clients' trustRoots=).
    #[command(after_help = "\
Then, in two terminals:
  weft serve line-echo --listen tls:DIR:port=8443
  weft connect tls:localhost:8443:trustRoots=DIR/localhost.crt")]
    SelfSigned(SelfSignedArgs),
}

/// Arguments of `weft cert self-signed`.
#[derive(Debug, Args)]
pub struct SelfSignedArgs {
    /// A name the certificate is valid for (repeat for more); IP addresses work too. The
    /// first one names the files. `localhost` also covers 127.0.0.1 and ::1.
    #[arg(long = "name", value_name = "NAME", required = true)]
    pub names: Vec<String>,
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Days the certificate stays valid.
    #[arg(long, value_name = "N", default_value_t = 90)]
    pub days: u32,
}

/// Runs `weft cert`.
pub fn run(args: CertArgs) -> Result<(), Failure> {
    match args.command {
        CertCommand::SelfSigned(a) => self_signed(a),
    }
}

fn self_signed(args: SelfSignedArgs) -> Result<(), Failure> {
    let mut names = args.names.clone();
    if names.iter().any(|n| n == "localhost") {
        for ip in ["127.0.0.1", "::1"] {
            if !names.iter().any(|n| n == ip) {
                names.push(ip.to_owned());
            }
        }
    }
    let usage =
        |e: rcgen::Error| Failure::new(exit::USAGE, format!("cannot make the certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(names.clone()).map_err(usage)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(u64::from(args.days) * 86_400)).into();
    let key = rcgen::KeyPair::generate().map_err(usage)?;
    let cert = params.self_signed(&key).map_err(usage)?;

    std::fs::create_dir_all(&args.out).map_err(|e| Failure::local_io(&args.out, &e))?;
    let stem = names[0].replace(['/', '\\', ':', '*'], "_");
    let pem = args.out.join(format!("{stem}.pem"));
    let crt = args.out.join(format!("{stem}.crt"));
    write_private(
        &pem,
        format!("{}{}", key.serialize_pem(), cert.pem()).as_bytes(),
    )
    .map_err(|e| Failure::local_io(&pem, &e))?;
    std::fs::write(&crt, cert.pem()).map_err(|e| Failure::local_io(&crt, &e))?;
    println!("{}", pem.display());
    println!("{}", crt.display());
    eprintln!(
        "valid {} days for {}; try:\n  weft serve line-echo --listen tls:{}:port=8443\n  weft connect tls:{}:8443:trustRoots={}",
        args.days,
        names.join(", "),
        args.out.display(),
        names[0],
        crt.display()
    );
    Ok(())
}

/// Writes a file only its owner can read (it holds a private key).
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}
