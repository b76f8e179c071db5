# The application bench/rack_hello.py serves with Canopy and with Puma: the
# smallest Rack answer, so that the servers' own costs are what is measured.
HELLO = "Hello, world!\n".freeze

run ->(_env) { [200, {"Content-Type" => "text/plain", "Content-Length" => "14"}, [HELLO]] }
