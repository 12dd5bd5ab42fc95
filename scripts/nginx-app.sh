# Sourced by the invocation scripts: nginx as the app, answering every
# request (any method, any path) with the same 1 KB JSON body.
#   start_nginx WORK PORT   nginx (the command in NGINX, if set) on
#                           127.0.0.1:PORT, files under WORK
#   start_nginx_proxy WORK PORT UPSTREAM   nginx as a reverse proxy on
#                           127.0.0.1:PORT to 127.0.0.1:UPSTREAM, with
#                           keep-alive both ways: what a proxy hop costs
#                           at its cheapest, to set the runtimes beside
#   wait_healthy PORT PID LOG   until the runtime answers its healthz
#   port_free PORT          fails when something answers on the port

# Fails when something already answers on 127.0.0.1:PORT.
port_free() {
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
    echo "port $1 is already in use" >&2
    return 1
  fi
}

start_nginx() {
  local work=$1 port=$2 body
  port_free "$port"
  body=$(printf '"%s"' "$(head -c 1022 /dev/zero | tr '\0' a)")
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    default_type application/json;
    location / { return 200 '$body'; }
  }
}
CONF
  "${NGINX[@]:-nginx}" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.log" 2>&1 &
  echo $! > "$work/nginx.pid.outer"
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
}

start_nginx_proxy() {
  local work=$1/proxy.$2 port=$2 upstream=$3
  port_free "$port"
  mkdir -p "$work"
  cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  keepalive_requests 1000000;
  upstream next { server 127.0.0.1:$upstream; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://next;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
  "${NGINX[@]:-nginx}" -p "$work" -c "$work/nginx.conf" >"$work.log" 2>&1 &
  echo $! > "$work.pid.outer"
  until curl -sf -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
}

wait_healthy() {
  local port=$1 pid=$2 log=$3
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1.0/healthz")" = 204 ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.05
  done
}
