// trivy-mirror CloudFront Function (runtime cloudfront-js-2.0), viewer-request event.
//
// Terraform prepends one line to this file: `var CONFIG = {...};` with
//   realm            realm of the Basic challenge
//   basicAuthSha256  hex SHA-256 of each accepted Authorization header value ("Basic base64(user:pass)");
//                    empty = no authentication. The header is removed once checked.
//   allowCidrs       IPv4/IPv6 CIDRs allowed to connect; empty = everyone
//   vexArchivePaths  viewer paths of the VEX archives
//   stripVexRevalid  drop If-None-Match / If-Modified-Since on the VEX archives (no 304 for Trivy <= 0.72)
//   pingObjectSuffix object that answers the registry ping (v2/index.json)
//
// The same file is evaluated by tests/edge/*.test.mjs under node, so it must stay free of
// module syntax and of anything outside the cloudfront-js-2.0 subset.

var crypto = require('crypto');

function cfg() {
  return typeof CONFIG === 'undefined' ? {} : CONFIG;
}

// ---- IP allow-list -------------------------------------------------------------------------------

// Parses an IPv4 or IPv6 address into an array of 16-bit words (IPv4: 2 words), or null.
function parseIp(text) {
  if (typeof text !== 'string' || text.length === 0) {
    return null;
  }
  if (text.indexOf(':') === -1) {
    var parts = text.split('.');
    if (parts.length !== 4) {
      return null;
    }
    var bytes = [];
    for (var i = 0; i < 4; i++) {
      if (!/^[0-9]{1,3}$/.test(parts[i])) {
        return null;
      }
      var b = parseInt(parts[i], 10);
      if (b > 255) {
        return null;
      }
      bytes.push(b);
    }
    return [(bytes[0] << 8) | bytes[1], (bytes[2] << 8) | bytes[3]];
  }
  // IPv6, with optional '::' and an optional dotted IPv4 tail (::ffff:192.0.2.1).
  var head = text;
  var tail = [];
  var lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    tail = parseIp(text.substring(lastColon + 1));
    if (tail === null || tail.length !== 2) {
      return null;
    }
    head = text.charAt(lastColon - 1) === ':' ? text.substring(0, lastColon + 1) : text.substring(0, lastColon);
  }
  var halves = head.split('::');
  if (halves.length > 2) {
    return null;
  }
  var parseGroups = function (s) {
    if (s === '') {
      return [];
    }
    var groups = s.split(':');
    var out = [];
    for (var j = 0; j < groups.length; j++) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(groups[j])) {
        return null;
      }
      out.push(parseInt(groups[j], 16));
    }
    return out;
  };
  var left = parseGroups(halves[0]);
  var right = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (left === null || right === null) {
    return null;
  }
  var words;
  if (halves.length === 2) {
    var missing = 8 - tail.length - left.length - right.length;
    if (missing < 1) {
      return null;
    }
    var zeros = [];
    for (var z = 0; z < missing; z++) {
      zeros.push(0);
    }
    words = left.concat(zeros, right, tail);
  } else {
    words = left.concat(tail);
  }
  return words.length === 8 ? words : null;
}

function cidrContains(cidr, words) {
  var slash = cidr.indexOf('/');
  var net = parseIp(slash === -1 ? cidr : cidr.substring(0, slash));
  if (net === null || net.length !== words.length) {
    return false;
  }
  var bits = slash === -1 ? net.length * 16 : parseInt(cidr.substring(slash + 1), 10);
  if (isNaN(bits) || bits < 0 || bits > net.length * 16) {
    return false;
  }
  for (var i = 0; i < net.length; i++) {
    var take = Math.min(16, Math.max(0, bits - i * 16));
    if (take === 0) {
      return true;
    }
    var mask = (0xffff << (16 - take)) & 0xffff;
    if ((net[i] & mask) !== (words[i] & mask)) {
      return false;
    }
  }
  return true;
}

function ipAllowed(ip, cidrs) {
  if (!cidrs || cidrs.length === 0) {
    return true;
  }
  var words = parseIp(ip);
  if (words === null) {
    return false;
  }
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched against IPv4 ranges too.
  var v4 = null;
  if (words.length === 8 && words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    v4 = [words[6], words[7]];
  }
  for (var i = 0; i < cidrs.length; i++) {
    if (cidrContains(cidrs[i], words) || (v4 !== null && cidrContains(cidrs[i], v4))) {
      return true;
    }
  }
  return false;
}

// ---- Basic auth -----------------------------------------------------------------------------------

function authorized(request, hashes) {
  if (!hashes || hashes.length === 0) {
    return true;
  }
  var header = request.headers.authorization;
  if (!header || typeof header.value !== 'string') {
    return false;
  }
  var digest = crypto.createHash('sha256').update(header.value).digest('hex');
  var ok = false;
  for (var i = 0; i < hashes.length; i++) {
    // Compare every entry so that the time taken does not depend on which one matched.
    if (hashes[i] === digest) {
      ok = true;
    }
  }
  return ok;
}

function unauthorized(realm) {
  return {
    statusCode: 401,
    statusDescription: 'Unauthorized',
    headers: {
      'www-authenticate': { value: 'Basic realm="' + (realm || 'trivy-mirror') + '", charset="UTF-8"' },
      'content-type': { value: 'application/json' },
      'cache-control': { value: 'no-store' }
    },
    body: {
      encoding: 'text',
      data: '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    }
  };
}

function forbidden() {
  return {
    statusCode: 403,
    statusDescription: 'Forbidden',
    headers: {
      'content-type': { value: 'application/json' },
      'cache-control': { value: 'no-store' }
    },
    body: {
      encoding: 'text',
      data: '{"errors":[{"code":"DENIED","message":"address not allowed"}]}'
    }
  };
}

// ---- handler --------------------------------------------------------------------------------------

function handler(event) {
  var c = cfg();
  var request = event.request;

  if (!ipAllowed(event.viewer && event.viewer.ip, c.allowCidrs)) {
    return forbidden();
  }
  if (!authorized(request, c.basicAuthSha256)) {
    return unauthorized(c.realm);
  }
  // Checked: the origin never needs the viewer's credentials (OAC signs with its own).
  delete request.headers.authorization;

  // Object stores cannot hold a key ending in '/': the registry ping /v2/ is served by v2/index.json.
  if (request.uri === '/v2/' || request.uri === '/v2') {
    request.uri = '/' + (c.pingObjectSuffix || 'v2/index.json');
    return request;
  }

  // Trivy <= 0.72 deletes its VEX cache when the archive answers 304: never let a conditional
  // request through for the archive (the ETag is also removed from the response).
  if (c.stripVexRevalid && c.vexArchivePaths && c.vexArchivePaths.indexOf(request.uri) !== -1) {
    delete request.headers['if-none-match'];
    delete request.headers['if-modified-since'];
  }

  return request;
}
