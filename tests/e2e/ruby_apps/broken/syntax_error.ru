# A rackup file Ruby cannot parse.
run ->(env) { [200, {}, ["unbalanced"]
