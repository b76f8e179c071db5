# Builds nothing callable: Rack::Builder raises, and the configuration is refused.
puts "a rackup file without run"
