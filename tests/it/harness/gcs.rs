//! Google Cloud Storage's XML API, served by moto's S3 server behind an nginx front that
//! enforces GCS's access rules, plus a stand-in for the GCE metadata server.
//!
//! No GCS emulator implements the XML API object_store writes through (fake-gcs-server
//! answers a PUT with "invalid uploadType", fsouza/fake-gcs-server#331; storage-testbench
//! and gcp-storage-emulator have no XML multipart upload or listing). The XML API is GCS's
//! S3-compatible interface, and object_store's GCS client speaks exactly its S3 subset:
//! path-style `PUT /BUCKET/KEY` with `Content-Type`/`Cache-Control`, `POST ?uploads`,
//! `PUT ?partNumber=N&uploadId=…`, `POST ?uploadId=…` with a `CompleteMultipartUpload`
//! body, `DELETE ?uploadId=…`, `GET /BUCKET?list-type=2`, `HEAD`/`GET` of an object. moto
//! answers each of those as GCS documents it (S3 XML bodies, `ETag`, `Last-Modified`).
//!
//! What is real: object_store's GCS client (the one the `gs://` destination uses) built by
//! `GoogleCloudStorageBuilder::from_env()` from `GOOGLE_BASE_URL`, its token from the
//! metadata server (`GCE_METADATA_HOST`, the Cloud Run / GKE path) sent as
//! `Authorization: Bearer` on every request. The front forwards requests and answers byte
//! for byte; it only refuses what GCS refuses: any request with a wrong token, and without
//! a token anything but an object read (the bucket grants `allUsers` object reads, which is
//! what the CDN stand-in relies on; moto's bucket policy grants the same).
//!
//! What differs from GCS: moto does not check the token (the front does); responses carry
//! `x-amz-*`/`x-amzn-*` headers instead of `x-goog-generation`/`x-goog-hash`/
//! `x-goog-stored-content-*` (object_store treats the generation as optional: a put's
//! `version` is `None`); error bodies are S3's; access is a bucket policy, not IAM; plain
//! HTTP instead of TLS. moto checks the 5 MiB minimum part size, as GCS does. Bucket names
//! here are alphanumeric: object_store percent-encodes every other byte of the bucket
//! (`mirror-gcs` → `mirror%2Dgcs`), which GCS decodes but moto 5.2 takes literally
//! (`NoSuchBucket`); keys are decoded by both.
//!
//! Two moto traits explain what was seen with `disable_oauth`: an empty `Authorization:
//! Bearer ` (object_store sends it on PUT and `POST ?uploads` with `disable_oauth`) makes
//! moto's service inference raise (HTTP 500), and a GET/HEAD without `Authorization` (what
//! it sends on reads) is anonymous, so private objects answer 403 unless a bucket policy
//! grants reads. A real token sent on every request avoids both without rewriting anything.

use super::{Moto, Nginx};

/// The OAuth access token the metadata stand-in issues and the front requires.
pub const GCS_TOKEN: &str = "ya29.gcs-test-token";

/// GCS's XML API on loopback (moto behind an nginx front) and a metadata server.
pub struct Gcs {
    /// The bucket, created empty.
    pub bucket: String,
    /// The XML API endpoint, `http://127.0.0.1:PORT` (what `GOOGLE_BASE_URL` names).
    pub base_url: String,
    /// `127.0.0.1:PORT` of the front.
    pub addr: String,
    /// The S3 server storing the objects (its log shows every request the front passed).
    pub moto: Moto,
    /// The front enforcing GCS's access rules.
    pub front: Nginx,
    /// The GCE metadata server stand-in issuing [`GCS_TOKEN`].
    pub metadata: Nginx,
}

impl Gcs {
    /// Start moto with `bucket`, the front and the metadata server.
    pub fn start(bucket: &str) -> Gcs {
        assert!(bucket.bytes().all(|b| b.is_ascii_alphanumeric()), "moto needs an alphanumeric bucket name");
        // Moto::start also grants anonymous s3:GetObject/HeadObject: allUsers objectViewer.
        let moto = Moto::start(bucket);
        let token = GCS_TOKEN.replace('.', "\\.");
        // `$access` is "<Authorization>|<method>|<request URI>"; a request is let through
        // when it carries the token, or is an anonymous GET/HEAD of an object. proxy_pass
        // without a URI part sends the request line as received (keys stay %2F-encoded).
        let front = Nginx::start(&format!(
            "    client_max_body_size 0;\n    proxy_request_buffering off;\n    proxy_buffering off;\n    proxy_http_version 1.1;\n\
                 location / {{\n\
                   set $access \"$http_authorization|$request_method|$request_uri\";\n\
                   if ($access ~ \"^Bearer {token}\\|\") {{ set $access granted; }}\n\
                   if ($access ~ \"^\\|(GET|HEAD)\\|/{bucket}/[^?]\") {{ set $access granted; }}\n\
                   if ($access != granted) {{ return 401; }}\n\
                   proxy_pass http://{moto};\n\
                 }}",
            moto = moto.addr,
        ));
        // The endpoint Google's client libraries, object_store included, ask on Cloud Run,
        // GKE and GCE (they send `Metadata-Flavor: Google`).
        let metadata = Nginx::start(&format!(
            "    location = /computeMetadata/v1/instance/service-accounts/default/token {{\n\
                   if ($http_metadata_flavor != \"Google\") {{ return 403; }}\n\
                   default_type application/json;\n\
                   return 200 '{{\"access_token\":\"{GCS_TOKEN}\",\"expires_in\":3599,\"token_type\":\"Bearer\"}}';\n\
                 }}"
        ));
        Gcs {
            bucket: bucket.to_string(),
            base_url: format!("http://{}", front.addr),
            addr: front.addr.clone(),
            moto,
            front,
            metadata,
        }
    }

    /// object_store's environment for this server: the XML API endpoint and the metadata
    /// server, nothing else (no key file, no `disable_oauth`, no skipped signature).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![("GOOGLE_BASE_URL", self.base_url.clone()), ("GCE_METADATA_HOST", self.metadata.addr.clone())]
    }

    /// What a CDN in front of the bucket proxies to: `http://FRONT/BUCKET/PREFIX/`.
    pub fn origin(&self, prefix: &str) -> String {
        format!("{}/{}/{prefix}/", self.base_url, self.bucket)
    }

    /// Requests for the bucket the front refused (status 401), from its access log (the
    /// readiness probe `GET /` is refused too, and left out).
    pub fn refused(&self) -> Vec<String> {
        let bucket = format!(" /{}", self.bucket);
        let log = self.front.access_log();
        log.lines().filter(|l| l.contains("\" 401 ") && l.contains(&bucket)).map(str::to_string).collect()
    }

    /// Tokens fetched from the metadata server so far.
    pub fn token_fetches(&self) -> usize {
        self.metadata.access_log().lines().filter(|l| l.contains("\" 200 ")).count()
    }
}
