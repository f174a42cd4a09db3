// SigV4 against the examples of the AWS S3 documentation ("Signature Calculations for the
// Authorization Header" GET Object example, and "Query String Auth" presigned URL example).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EMPTY_SHA256, encodePath, presignUrl, signHeaders, uriEncode } from '../src/kb/s3/sigv4.js';

const creds = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const now = new Date('2013-05-24T00:00:00Z');

it('signs the documentation GET Object example (Range header)', () => {
  const h = signHeaders(creds, {
    method: 'GET',
    path: '/test.txt',
    headers: { host: 'examplebucket.s3.amazonaws.com', range: 'bytes=0-9' },
    payloadHash: EMPTY_SHA256,
    region: 'us-east-1',
    now,
  });
  assert.equal(
    h.authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  );
  assert.equal(h['x-amz-date'], '20130524T000000Z');
});

it('presigns the documentation query-string example (86400 s)', () => {
  const url = presignUrl(creds, { endpoint: new URL('https://examplebucket.s3.amazonaws.com'), path: '/test.txt', region: 'us-east-1', expiresSec: 86400, now });
  assert.equal(
    url,
    'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404',
  );
});

it('encodes like RFC 3986 and refuses an out-of-range expiry', () => {
  assert.equal(uriEncode("a b!'()*~"), 'a%20b%21%27%28%29%2A~');
  assert.equal(encodePath('/bucket/blobs/a b'), '/bucket/blobs/a%20b');
  assert.throws(() => presignUrl(creds, { endpoint: new URL('http://h'), path: '/x', region: 'r', expiresSec: 0 }), /expiry 0/);
});
