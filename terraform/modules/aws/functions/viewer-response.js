// trivy-mirror CloudFront Function (runtime cloudfront-js-2.0), viewer-response event.
//
// Terraform prepends one line to this file: `var CONFIG = {...};` with
//   dockerContentDigest  add Docker-Content-Digest for blobs and manifests requested by digest
//   vexArchivePaths      viewer paths of the VEX archives
//   stripVexEtag         drop ETag and Last-Modified on the VEX archives
//
// Evaluated unchanged by tests/edge/*.test.mjs under node.

var DIGEST_PATH = /^\/v2\/.+\/(blobs|manifests)\/(sha256:[0-9a-f]{64})$/;

function cfg() {
  return typeof CONFIG === 'undefined' ? {} : CONFIG;
}

function handler(event) {
  var c = cfg();
  var request = event.request;
  var response = event.response;
  var status = response.statusCode;
  var ok = status >= 200 && status < 300;

  if (c.dockerContentDigest && ok) {
    var m = DIGEST_PATH.exec(request.uri);
    if (m !== null) {
      // The digest is the object's name: the bytes behind it cannot be anything else.
      response.headers['docker-content-digest'] = { value: m[2] };
    } else if (response.headers['x-amz-meta-docker-content-digest']) {
      // A tag manifest whose object carries the digest as user metadata.
      response.headers['docker-content-digest'] = { value: response.headers['x-amz-meta-docker-content-digest'].value };
    }
  }

  if (c.stripVexEtag && c.vexArchivePaths && c.vexArchivePaths.indexOf(request.uri) !== -1) {
    delete response.headers.etag;
    delete response.headers['last-modified'];
  }

  return response;
}
