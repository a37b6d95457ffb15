# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies; better-sqlite3 is a native addon, built here if no prebuilt binary fits.
FROM node:20-bookworm-slim AS deps
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# Runtime stage: the compiled service and its production dependencies only.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    HTTP_PORT=3000 \
    TCP_PORT=8080 \
    SQLITE_PATH=/app/data/mls-ds.sqlite
WORKDIR /app
# Writable by the service user, for STORE=sqlite.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME /app/data
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 3000 8080
# Over HTTPS when TLS_CERT_FILE is set; the certificate names a public host, so it is not checked here.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const tls = !!process.env.TLS_CERT_FILE; require(tls ? 'https' : 'http').get({ host: '127.0.0.1', port: process.env.HTTP_PORT || 3000, path: '/health', rejectUnauthorized: false, timeout: 2500 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))"]
CMD ["node", "dist/server.js"]
