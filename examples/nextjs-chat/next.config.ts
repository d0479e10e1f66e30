import type { NextConfig } from 'next';

// Herald's URL is not baked in here: the root layout reads
// NEXT_PUBLIC_HERALD_URL when it renders (at request time) and hands it to
// the browser, so one build runs against any Herald.
const nextConfig: NextConfig = {
  reactStrictMode: true,
  poweredByHeader: false,
};

export default nextConfig;
