# The Ruby example `make run` serves on http://127.0.0.1:8080/rb: a plain
# Rack application (no framework), on Debian's ruby-rack.
class Hello
  def call(env)
    body = "Hello from Rack on #{RUBY_ENGINE} #{RUBY_VERSION} (#{env['REQUEST_METHOD']} #{env['PATH_INFO']})\n"
    [200, { "Content-Type" => "text/plain" }, [body]]
  end
end

run Hello.new
