// Workload.java — the JVM under the preload (tests/real/java.sh): HotSpot's own native side
// (JIT compilers, class loading, GC worker threads, signal-based safepoints) allocates through
// malloc from many threads. Deterministic output: sums and digests only.
import java.security.MessageDigest;
import java.util.*;
import java.util.concurrent.*;
import java.util.stream.*;

public class Workload {
    static long mapTask(int seed) {
        Map<String, Integer> m = new HashMap<>();
        for (int i = 0; i < 150000; i++)
            m.merge("k" + ((i * 7919L + seed) % 40000), 1, Integer::sum);
        long h = 0;
        for (Map.Entry<String, Integer> e : m.entrySet())
            h += (long) e.getKey().hashCode() * e.getValue();
        return h;
    }

    public static void main(String[] args) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(8);
        List<Future<Long>> fs = new ArrayList<>();
        for (int t = 0; t < 24; t++) {
            final int s = t;
            fs.add(ex.submit(() -> mapTask(s)));
        }
        long total = 0;
        for (Future<Long> f : fs)
            total += f.get();
        ex.shutdown();
        System.out.println("maps " + total);

        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 200000; i++)
            sb.append(Integer.toHexString(i * 31)).append(i % 17 == 0 ? '\n' : ',');
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        byte[] d = md.digest(sb.toString().getBytes("UTF-8"));
        System.out.println("sha256 " + HexFormat.of().formatHex(d));

        List<Integer> xs = IntStream.range(0, 1000000).map(i -> (int) ((i * 2654435761L) % 1000003))
                                    .boxed().collect(Collectors.toList());
        Collections.sort(xs);
        long acc = 0;
        for (int i = 0; i < xs.size(); i += 1000)
            acc = acc * 31 + xs.get(i);
        System.out.println("sorted " + acc);

        long sum = IntStream.range(0, 2000000).parallel().mapToLong(i -> (long) i * i % 1000).sum();
        System.out.println("parallel " + sum);

        for (int r = 0; r < 3; r++) {
            List<byte[]> junk = new ArrayList<>();
            for (int i = 0; i < 20000; i++)
                junk.add(new byte[(i % 50) * 64 + 16]);
            System.gc();
            System.out.println("gc round " + r + " " + junk.size());
        }
    }
}
