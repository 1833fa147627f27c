//! The destination conformance routine (`trivy_mirror::dest::conformance`) against every
//! real backend the tests can start: moto S3, Azurite and a distribution registry (the
//! OCI part). `InMemory` and a local directory run it in the library's unit tests; the GCS
//! XML API runs it in `object_stores`. Each store is built in process with explicit
//! settings, so nothing depends on this process's environment.

use std::sync::Arc;

use object_store::ObjectStore;
use trivy_mirror::dest::conformance;
use trivy_mirror::dest::object::ObjectDestination;
use trivy_mirror::dest::registry::RegistryDestination;

use crate::harness::*;

/// Run the routine on `store` as a static layout under `prefix`.
pub fn layout(name: &str, store: Arc<dyn ObjectStore>, prefix: &str) {
    let dest = ObjectDestination::with_store(name, store, prefix, true, 300);
    tokio::runtime::Runtime::new().unwrap().block_on(conformance::run(&dest, "it", true));
}

#[test]
fn s3_moto() {
    let moto = Moto::start("conformance");
    let store = moto.store("conformance");
    layout("s3://conformance/p", Arc::new(store), "p");
}

#[test]
fn azure_azurite() {
    let azurite = Azurite::start("conformance");
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(AZURITE_ACCOUNT)
        .with_access_key(AZURITE_KEY)
        .with_endpoint(format!("http://{}/{AZURITE_ACCOUNT}", azurite.addr))
        .with_allow_http(true)
        .with_container_name("conformance")
        .build()
        .unwrap();
    layout("az://conformance/p", Arc::new(store), "p");
}

#[test]
fn registry_distribution() {
    let registry = Registry::start();
    let dest = RegistryDestination::new(
        &format!("oci://{}/mirror", registry.addr),
        &registry.addr,
        "mirror",
        Default::default(),
    )
    .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(conformance::run(&dest, "it", true));
}
