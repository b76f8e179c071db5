# A Sinatra application (Debian's ruby-sinatra) for tests/e2e/test_ruby.py.
require "digest"
require "sinatra/base"

class Shop < Sinatra::Base
  set :show_exceptions, false
  set :raise_errors, false
  set :host_authorization, permitted_hosts: [] if settings.respond_to?(:host_authorization)

  get "/hello/:name" do
    "Hello #{params[:name]}, you asked for #{params[:colour] || 'nothing'}\n"
  end

  post "/form" do
    "name=#{params[:name]} colour=#{params[:colour]}\n"
  end

  post "/upload" do
    upload = params[:file]
    halt 400, "no file\n" unless upload
    data = upload[:tempfile].read
    content_type :json
    %({"filename": "#{upload[:filename]}", "size": #{data.bytesize}, ) +
      %("sha256": "#{Digest::SHA256.hexdigest(data)}", "note": "#{params[:note]}"})
  end

  get "/private" do
    halt 403, "go away\n"
  end

  get "/boom" do
    raise "sinatra route failed"
  end

  error do
    status 500
    "handled: #{env['sinatra.error'].message}\n"
  end
end

# Served under /sinatra: Rack::URLMap moves the prefix to SCRIPT_NAME.
map("/sinatra") { run Shop }
