//! `tether doctor`: every check, here and on each VM, each failure with its fix; `--report`
//! writes the bundle for a bug report.

use anyhow::Result;
use tether_core::control::Request;
use tether_core::paths::Paths;

use crate::client::Engine;
use crate::output;

pub async fn doctor(paths: &Paths, name: Option<String>, json: bool, report: Option<std::path::PathBuf>) -> Result<()> {
    let facts = tether_core::doctor::ClientFacts {
        path: std::env::var("PATH").ok(),
        docker_host: std::env::var("DOCKER_HOST").ok(),
    };
    let mut e = Engine::ensure(paths).await?;
    let found: tether_core::doctor::Doctor = e
        .ask(&Request::Doctor {
            name,
            facts: facts.clone(),
        })
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        println!("This laptop");
        output::checks(&found.local);
        for vm in &found.vms {
            println!("\nVM '{}'", output::clean(&vm.name));
            output::checks(&vm.checks);
        }
    }
    if let Some(file) = report {
        let file = std::path::absolute(&file)?;
        let names: Vec<String> = e
            .ask(&Request::DoctorReport {
                file: file.clone(),
                facts,
            })
            .await?;
        eprintln!("report written to {} ({} files)", file.display(), names.len());
    }
    if !found.ok() {
        return Err(crate::exit::ChecksFailed.into());
    }
    Ok(())
}
