# The plain Rack application of tests/e2e/test_ruby.py: one route per
# behaviour of the module; /lint/... runs the same routes under Rack::Lint
# (Rack::URLMap moves /lint to SCRIPT_NAME); /threads/... is the same
# application configured with four threads.
require "digest"
require "json"
require "uri" # Rack 2.2's Lint uses URI without requiring it

class RackProbe
  # One frozen body that every thread sends at once.
  SHARED = ("shared body " * 25_000).freeze

  def initialize
    @arrivals = Queue.new
    @lock = Mutex.new
    @waiting = 0
    @released = ConditionVariable.new
  end

  def call(env)
    route = env["PATH_INFO"].sub(%r{\A/threads}, "")
    case route
    when "/" then text("Hello from Rack\n")
    when %r{\A/env} then report_env(env)
    when "/echo" then text(env["rack.input"].read)
    when "/gets" then read_lines(env)
    when "/each" then text(env["rack.input"].each.map { |line| "[#{line}]" }.join)
    when "/read-pieces" then read_pieces(env)
    when "/digest" then digest_twice(env)
    when "/headers" then headers
    when "/stream" then stream(env)
    when "/file" then send_file(env)
    when "/call" then call_body
    when "/close" then closing_body(env)
    when "/close-after-raise" then closing_body(env, fail: true)
    when "/raise" then raise ArgumentError, "the application failed on purpose"
    when "/not-string" then [200, {"content-type" => "text/plain"}, [:symbol]]
    when "/bad-status" then ["abc", {}, []]
    when "/errors"
      env["rack.errors"].puts "a line for the log from rack.errors"
      env["rack.errors"].write "and another\n"
      env["rack.errors"].flush
      [204, {}, []]
    when "/pid" then text(Process.pid.to_s)
    when "/shared" then [200, {"content-type" => "text/plain"}, [SHARED]]
    when "/barrier" then barrier(env)
    else [404, {"content-type" => "text/plain"}, ["not found\n"]]
    end
  end

  private

  def text(body, status = 200)
    [status, {"content-type" => "text/plain"}, [body]]
  end

  def json(value)
    [200, {"content-type" => "application/json"}, [JSON.generate(value)]]
  end

  def report_env(env)
    input = env["rack.input"]
    json(env.select { |key, value| value.is_a?(String) && key == key.upcase }.merge(
      "rack.version" => env["rack.version"],
      "rack.url_scheme" => env["rack.url_scheme"],
      "rack.multithread" => env["rack.multithread"],
      "rack.multiprocess" => env["rack.multiprocess"],
      "rack.run_once" => env["rack.run_once"],
      "rack.hijack?" => env["rack.hijack?"],
      "errors" => %i[puts write flush].all? { |name| env["rack.errors"].respond_to?(name) },
      "input" => %i[gets read each rewind].all? { |name| input.respond_to?(name) },
      "encodings" => env.values.grep(String).map { |value| value.encoding.name }.uniq,
      "pid" => Process.pid
    ))
  end

  def read_lines(env)
    input = env["rack.input"]
    lines = []
    while (line = input.gets)
      lines << line
    end
    json("lines" => lines, "after" => input.gets, "read" => input.read, "read_n" => input.read(4))
  end

  # read(n, buffer) in pieces, then rewind and read(nil) again.
  def read_pieces(env)
    input = env["rack.input"]
    buffer = String.new
    pieces = []
    while input.read(3, buffer)
      pieces << buffer.dup
    end
    input.rewind
    json("pieces" => pieces, "again" => input.read, "encoding" => buffer.encoding.name)
  end

  # Reads the whole body in 64 KiB pieces twice (rewinding in between), so a
  # large upload is read back from rack.input's temporary file. One buffer
  # serves every piece: the application makes no garbage of its own.
  def digest_twice(env)
    input = env["rack.input"]
    piece = String.new(capacity: 65_536)
    digests = 2.times.map do
      digest = Digest::SHA256.new
      size = 0
      while input.read(65_536, piece)
        digest << piece
        size += piece.bytesize
      end
      input.rewind
      [size, digest.hexdigest]
    end
    json("digests" => digests)
  end

  def headers
    [200, {"content-type" => "text/plain", "x-joined" => "one\ntwo",
           "set-cookie" => ["a=1", "b=2"], "x-single" => "alone"}, ["headers\n"]]
  end

  # Yields a first piece, then waits for the client to say it got it.
  def stream(env)
    signal = env["QUERY_STRING"]
    body = Enumerator.new do |out|
      out << "first\n"
      arrived = 200.times.any? { File.exist?(signal) || (sleep(0.05) && false) }
      out << (arrived ? "second\n" : "the client never saw the first piece\n")
    end
    [200, {"content-type" => "text/plain"}, body]
  end

  class FileBody
    def initialize(path)
      @path = path
    end

    def to_path
      @path
    end

    def each
      yield "to_path was not used\n"
    end
  end

  def send_file(env)
    path = env["QUERY_STRING"]
    [200, {"content-type" => "application/octet-stream"}, FileBody.new(path)]
  end

  def call_body
    streaming = lambda do |stream|
      stream.write("streamed ")
      stream << "by call"
      stream.flush
      stream.close
    end
    [200, {"content-type" => "text/plain"}, streaming]
  end

  class ClosingBody
    def initialize(marker, fail)
      @marker = marker
      @fail = fail
    end

    def each
      yield "part one\n"
      raise IOError, "the body failed on purpose" if @fail
      yield "part two\n"
    end

    def close
      File.write(@marker, "closed")
    end
  end

  def closing_body(env, fail: false)
    [200, {"content-type" => "text/plain"}, ClosingBody.new(env["QUERY_STRING"], fail)]
  end

  # Answers once four requests are inside the application at the same time.
  def barrier(_env)
    together = @lock.synchronize do
      @waiting += 1
      @released.broadcast if @waiting == 4
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
      while @waiting < 4
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        break if left <= 0
        @released.wait(@lock, left)
      end
      @waiting >= 4
    end
    json("together" => together, "thread" => Thread.current.object_id, "pid" => Process.pid,
         "multithread" => true)
  end
end

probe = RackProbe.new
map("/lint") do
  use Rack::Lint
  run probe
end
run probe
