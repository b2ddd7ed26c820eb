// An application in Java: the JDK's own PKCS#11 provider (SunPKCS11) with
// libhsm_pkcs11.so, as a Java application would use CloudHSM's library.
//
// Usage: java SunPkcs11Probe CONFIG PIN, with HSM_PKCS11_CONFIG naming the
// cluster's client.env. Makes EC and RSA key pairs and signs with them
// through the provider, verifying with the JDK's own providers; makes an
// AES key and round-trips AES-CBC; draws random bytes. Prints a line per
// check; exits 1 on the first failure.

import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.KeyStore;
import java.security.Provider;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.KeyGenerator;
import javax.crypto.SecretKey;
import javax.crypto.spec.IvParameterSpec;

public class SunPkcs11Probe {
    static void check(String what, boolean ok) {
        if (!ok) {
            System.out.println("FAIL: " + what);
            System.exit(1);
        }
        System.out.println("ok: " + what);
    }

    static boolean signsWhatTheJdkVerifies(Provider hsm, String algorithm, KeyPair pair, byte[] data)
            throws Exception {
        Signature signer = Signature.getInstance(algorithm, hsm);
        signer.initSign(pair.getPrivate());
        signer.update(data);
        byte[] signature = signer.sign();
        Signature verifier = Signature.getInstance(algorithm); // the JDK's own
        verifier.initVerify(pair.getPublic());
        verifier.update(data);
        return verifier.verify(signature);
    }

    public static void main(String[] args) throws Exception {
        Provider hsm = Security.getProvider("SunPKCS11").configure(args[0]);
        Security.addProvider(hsm);
        KeyStore keyStore = KeyStore.getInstance("PKCS11", hsm);
        keyStore.load(null, args[1].toCharArray());
        byte[] data = "Java through SunPKCS11".getBytes("UTF-8");

        KeyPairGenerator ec = KeyPairGenerator.getInstance("EC", hsm);
        ec.initialize(new ECGenParameterSpec("secp256r1"));
        check("SHA256withECDSA on the HSM, verified by the JDK",
                signsWhatTheJdkVerifies(hsm, "SHA256withECDSA", ec.generateKeyPair(), data));

        KeyPairGenerator rsa = KeyPairGenerator.getInstance("RSA", hsm);
        rsa.initialize(2048);
        check("SHA256withRSA on the HSM, verified by the JDK",
                signsWhatTheJdkVerifies(hsm, "SHA256withRSA", rsa.generateKeyPair(), data));

        KeyGenerator aes = KeyGenerator.getInstance("AES", hsm);
        aes.init(256);
        SecretKey key = aes.generateKey();
        Cipher cipher = Cipher.getInstance("AES/CBC/PKCS5Padding", hsm);
        IvParameterSpec iv = new IvParameterSpec(new byte[16]);
        cipher.init(Cipher.ENCRYPT_MODE, key, iv);
        byte[] sealed = cipher.doFinal(data);
        cipher.init(Cipher.DECRYPT_MODE, key, iv);
        check("AES/CBC/PKCS5Padding round trip", Arrays.equals(cipher.doFinal(sealed), data));

        byte[] random = new byte[32];
        SecureRandom.getInstance("PKCS11", hsm).nextBytes(random);
        check("SecureRandom from the HSM", !Arrays.equals(random, new byte[32]));
        System.out.println("all checks passed");
    }
}
