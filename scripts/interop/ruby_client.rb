# The official Ruby S3 Encryption Client (Debian ruby-aws-sdk-s3), driven by
# scripts/interop/ruby_suffix.py: put or get one object with its envelope in an
# instruction file under a given suffix.
#
#   ruby ruby_client.rb put BUCKET KEY SUFFIX FILE   # encrypt FILE into s3://BUCKET/KEY
#   ruby ruby_client.rb get BUCKET KEY SUFFIX FILE   # decrypt s3://BUCKET/KEY into FILE
#
# The AES-256 master key comes on stdin (base64), never as an argument. The endpoint
# and credentials come from AWS_ENDPOINT_URL_S3 and the usual AWS_* variables.
require 'aws-sdk-s3'
require 'base64'

action, bucket, key, suffix, file = ARGV
master_key = Base64.strict_decode64($stdin.read.strip)

s3 = Aws::S3::Client.new(
  endpoint: ENV.fetch('AWS_ENDPOINT_URL_S3'),
  region: ENV.fetch('AWS_DEFAULT_REGION', 'us-east-1'),
  force_path_style: true
)
client = Aws::S3::EncryptionV2::Client.new(
  client: s3,
  encryption_key: master_key,
  key_wrap_schema: :aes_gcm,
  content_encryption_schema: :aes_gcm_no_padding,
  security_profile: :v2,
  envelope_location: :instruction_file,
  instruction_file_suffix: suffix
)

case action
when 'put'
  File.open(file, 'rb') { |body| client.put_object(bucket: bucket, key: key, body: body) }
when 'get'
  File.open(file, 'wb') { |out| client.get_object(bucket: bucket, key: key, response_target: out) }
else
  abort "unknown action #{action}"
end
